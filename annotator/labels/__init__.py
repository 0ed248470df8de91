"""Labels: people's labels in (CSV, Label Studio) and faces to label out, most uncertain first."""

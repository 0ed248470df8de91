"""One module per export format: csv, jsonl, parquet, tfrecord, class folders and the seed's condition_data."""

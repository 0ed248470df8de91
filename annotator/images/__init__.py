"""Images: find and hash them under a folder, decode them into photos and faces, generate example portraits."""

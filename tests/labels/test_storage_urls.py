"""Label Studio tasks of images in object stores keep their URIs, which Label Studio's S3/GCS storages resolve."""

from annotator.labels.label_studio import image_url, path_from_url


def test_stored_images_keep_their_uri_and_prefixes_rewrite_it():
    assert image_url("s3://faces/batch1/a.jpg", []) == "s3://faces/batch1/a.jpg"
    assert image_url("gs://faces/a b.jpg", []) == "gs://faces/a b.jpg"
    assert image_url("s3://faces/batch1/a.jpg", [("s3://faces", "s3://mirror")]) == "s3://mirror/batch1/a.jpg"
    assert image_url("/srv/photos/a.jpg", []) == "/data/local-files/?d=/srv/photos/a.jpg"
    assert path_from_url("s3://faces/batch1/a.jpg") == "s3://faces/batch1/a.jpg"

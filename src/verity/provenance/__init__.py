"""Provenance: what a file says about where it came from.

* :mod:`verity.provenance.metadata` -- bounded readers for PNG text chunks, EXIF text and
  thumbnails, XMP, IPTC-IIM, generator settings blocks and editing software names.
* :mod:`verity.provenance.thumbnail` -- comparing an EXIF preview with the main image.
* :mod:`verity.provenance.c2pa` -- C2PA Content Credentials: offline read/validate, sign, dev CA.

Submodules are imported on demand; importing this package is cheap.
"""

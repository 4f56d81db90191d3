"""The local "cloud": managed images, galleries / image definitions / versions, platform images and VHD blobs,
stored as content-addressed, reference-counted qcow2 files and served through the Microsoft.Compute API.

The build engine's API (all on ``Artifacts``, built once per data dir):

* ``resolve_source(source) -> ResolvedSource`` — an image template source (``latest`` resolved) to a qcow2 path
* ``open_image(resource_id) -> Path`` — the stored qcow2 of a managed image or gallery version (read-only)
* ``next_version(gallery_image_id, versioning, source_version)`` — AIB's version numbering (see ``versions``)
* ``register_managed_image(path, image_id, location=...)`` / ``create_gallery_version(version_id, ...)``
* ``export(image_id_or_path, "vhd" | "qcow2" | "raw", dest)``
"""

from vmforge.artifacts.service import Artifacts, ResolvedSource
from vmforge.artifacts.versions import latest, next_gallery_version

__all__ = ["Artifacts", "ResolvedSource", "latest", "next_gallery_version"]

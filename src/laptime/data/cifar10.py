"""CIFAR-10 (Krizhevsky 2009): 60,000 32×32 RGB images in 10 classes, 50,000 train / 10,000 test.

Two sources, because the source of a dataset is part of its identity (targets calibrated on one do
not hold on the other):

* ``cifar10`` — the official python archive ``cifar-10-python.tar.gz`` (pickled batches
  ``data_batch_1`` … ``data_batch_5`` and ``test_batch``; each row is 3,072 uint8 values: 1,024 red,
  1,024 green, 1,024 blue, row-major). The cache keeps the official order.
* ``cifar10_webp`` — a lossy copy (every image through JPEG quality 75, then WebP quality 90; mean
  absolute error ≈ 6/255) laid out as image folders ``cifar10/{train,test}/<class>/<NNNN>.webp``,
  ``NNNN`` being the index of the image within its class in the official order. It has no public
  address: prepare it from the archive (``cifar10-webp.tar.xz``) or from an extracted tree
  (``laptime data prepare cifar10_webp --source DIR``). The official interleaving of the classes
  cannot be recovered from the folders, so this cache is **class-major**: classes in CIFAR-10's
  label order, then ``NNNN`` ascending. The decoded pixels and labels are checked against a
  fingerprint of this copy (:data:`WEBP_FINGERPRINT`), so a tree of other pixels — or a WebP
  decoder that decodes differently — is refused instead of silently giving incomparable results.

Both caches are the same four arrays, as ``.npy`` files (memory-mappable), each written
atomically: ``train_images`` uint8 ``[50000, 32, 32, 3]`` (NHWC), ``train_labels`` int64
``[50000]``, ``test_images`` uint8 ``[10000, 32, 32, 3]``, ``test_labels`` int64 ``[10000]``.
Labels follow CIFAR-10's order: airplane, automobile, bird, cat, deer, dog, frog, horse, ship,
truck. Preparing ``cifar10_webp`` from the archive took 15-25 s on this project's 2-core VM (reading
the xz-compressed tar ~7 s, decoding the 60,000 images ~9 s, plus checks and writes); a pool of
:data:`DECODE_WORKERS` processes decodes while the archive is read (on Linux; elsewhere, or if no
process can be started, decoding runs in-process). Decoding needs Pillow with WebP support.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import sys
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from laptime.atomic import atomic_write
from laptime.data.sources import DataError, DataFile, DataSource

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SPLITS = ("train", "test")
ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")
IMAGE_SHAPE = (32, 32, 3)
NUM_TRAIN = 50_000
NUM_TEST = 10_000

OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_ARCHIVE = "cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
_OFFICIAL_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}

WEBP_ARCHIVE = "cifar10-webp.tar.xz"
WEBP_MD5 = "f6f918ad11326cddaae79b5c12bd34d6"
#: :func:`fingerprint` of the ``cifar10_webp`` cache decoded from ``cifar10-webp.tar.xz`` with
#: Pillow 13.0 (libwebp through Pillow's wheel), in the class-major order described above.
WEBP_FINGERPRINT = "53b1fb12b5cc0d980bb99d13f0e44fd8"

#: Processes decoding images (the parent reads the archive meanwhile); 1 decodes in-process.
DECODE_WORKERS = 2
#: Images per task sent to a decoding process.
_DECODE_CHUNK = 1000
_IMAGE_SUFFIXES = (".webp", ".png", ".jpg", ".jpeg")
_PIL_FORMATS = ("WEBP", "PNG", "JPEG")


# --------------------------------------------------------------------------- the cache


def fingerprint(arrays: Mapping[str, np.ndarray]) -> str:
    """md5 over the four arrays (images as uint8, labels as little-endian int64), in :data:`ARRAYS` order."""
    digest = hashlib.md5()
    for name in ARRAYS:
        dtype = np.uint8 if name.endswith("images") else np.dtype("<i8")
        array = np.ascontiguousarray(np.asarray(arrays[name], dtype=dtype))
        digest.update(f"{name}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _check_arrays(arrays: Mapping[str, np.ndarray], origin: str) -> None:
    for split in SPLITS:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
            raise DataError(f"{origin}: {split} images have shape {images.shape} ({images.dtype}), expected [N, 32, 32, 3] uint8")
        if labels.shape != (len(images),):
            raise DataError(f"{origin}: {len(images)} {split} images but {labels.shape} labels")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASSES)):
            raise DataError(f"{origin}: {split} labels outside 0..{len(CLASSES) - 1}")


def write_arrays(directory: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write the four cache arrays as ``<name>.npy``, each atomically."""
    for name in ARRAYS:
        with atomic_write(Path(directory) / f"{name}.npy", "wb") as handle:
            np.save(handle, np.ascontiguousarray(arrays[name]))


def load_arrays(directory: Path, mmap: bool = True) -> dict[str, np.ndarray]:
    """The prepared cache: ``train_images``, ``train_labels``, ``test_images``, ``test_labels``."""
    try:
        return {name: np.load(Path(directory) / f"{name}.npy", mmap_mode="r" if mmap else None) for name in ARRAYS}
    except (OSError, ValueError) as exc:
        raise DataError(f"the CIFAR-10 cache in {directory} is unreadable ({exc}); prepare it again with "
                        f"`laptime data prepare {Path(directory).name} --force`") from exc


# --------------------------------------------------------------------------- official archive


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles the official batches only: dicts, lists, bytes and numpy arrays (no other callables)."""

    _ALLOWED = {
        ("_codecs", "encode"),  # bytes pickled at protocol 2 by Python 3
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a CIFAR-10 batch")
        return super().find_class(module, name)


def _read_batch(archive: tarfile.TarFile, members: Mapping[str, tarfile.TarInfo], name: str, origin: str):
    if name not in members:
        raise DataError(f"{origin}: no batch {name!r} in the archive")
    handle = archive.extractfile(members[name])
    if handle is None:
        raise DataError(f"{origin}: {name!r} is not a file")
    try:
        batch = _ArrayUnpickler(handle, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, TypeError, ValueError, EOFError) as exc:
        raise DataError(f"{origin}: batch {name!r} is not a CIFAR-10 batch ({exc})") from exc
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise DataError(f"{origin}: batch {name!r} holds data {data.shape} and {len(labels)} labels, expected [N, 3072] and N")
    # each row: 1024 red, 1024 green, 1024 blue values, row-major → [N, 32, 32, 3]
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def read_official_archive(path: Path) -> dict[str, np.ndarray]:
    """The four arrays from ``cifar-10-python.tar.gz``, in the official order."""
    origin = str(path)
    try:
        with tarfile.open(path, "r:gz") as archive:
            members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}
            arrays = {}
            for split, names in _OFFICIAL_BATCHES.items():
                parts = [_read_batch(archive, members, name, origin) for name in names]
                arrays[f"{split}_images"] = np.concatenate([images for images, _ in parts])
                arrays[f"{split}_labels"] = np.concatenate([labels for _, labels in parts])
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{origin}: not a readable CIFAR-10 archive ({exc})") from exc
    _check_arrays(arrays, origin)
    return arrays


def build_official(directory: Path) -> None:
    """Cache builder of ``cifar10``: unpickle the verified archive into the ``.npy`` arrays."""
    write_arrays(directory, read_official_archive(Path(directory) / OFFICIAL_ARCHIVE))


# --------------------------------------------------------------------------- image folders (webp copy)


def decode_images(blobs: list[bytes]) -> np.ndarray:
    """Decode encoded images (WebP, PNG, JPEG) into a uint8 ``[N, 32, 32, 3]`` array (RGB)."""
    from PIL import Image, UnidentifiedImageError  # imported here: only preparation needs Pillow

    out = np.empty((len(blobs), *IMAGE_SHAPE), dtype=np.uint8)
    for i, blob in enumerate(blobs):
        try:
            with Image.open(io.BytesIO(blob), formats=_PIL_FORMATS) as image:  # no probing of other formats
                image.load()
                pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise ValueError(f"image {i} of its chunk cannot be decoded: {exc}") from exc
        if pixels.shape != IMAGE_SHAPE:
            raise ValueError(f"an image is {pixels.shape[1]}x{pixels.shape[0]}, expected 32x32")
        out[i] = pixels
    return out


def _decode_stream(chunks: Iterable[list[bytes]], workers: int) -> Iterator[np.ndarray]:
    """Decoded chunks, in order; with ``workers > 1`` decoded by a process pool while ``chunks`` is read."""
    import multiprocessing

    # Only where fork is the safe, cheap default (Linux): spawn/forkserver would re-import the
    # caller's __main__, which an unguarded user script cannot survive. The children only decode.
    if workers <= 1 or not sys.platform.startswith("linux"):
        yield from map(decode_images, chunks)
        return
    import PIL.Image  # noqa: F401 - loaded before forking, so no child imports anything

    try:
        pool = multiprocessing.get_context("fork").Pool(workers)
    except (OSError, ValueError):  # no processes to be had: decode here
        yield from map(decode_images, chunks)
        return
    with pool:
        yield from pool.imap(decode_images, chunks)


#: ``[cifar10/]{train,test}/<class>/<name>.<ext>`` inside an archive or an extracted tree.
_MEMBER = re.compile(r"^(?:.*/)?(train|test)/([a-z]+)/([^/]+)$")


def _image_key(split: str, class_name: str, filename: str, origin: str) -> tuple[str, int, tuple]:
    if class_name not in CLASSES:
        raise DataError(f"{origin}: unknown class folder {split}/{class_name!r}; classes: {', '.join(CLASSES)}")
    stem = filename.rsplit(".", 1)[0]
    # files sort by their number (NNNN = index within the class in the official order), else by name
    order = (0, int(stem), "") if stem.isdigit() else (1, 0, stem)
    return split, CLASSES.index(class_name), order


def _assemble(keys: list[tuple[str, int, tuple]], images: np.ndarray, origin: str) -> dict[str, np.ndarray]:
    """Arrays in class-major order (class label, then file number) from images keyed by ``keys``."""
    arrays: dict[str, np.ndarray] = {}
    for split in SPLITS:
        picked = sorted((key, i) for i, key in enumerate(keys) if key[0] == split)
        missing = [CLASSES[c] for c in range(len(CLASSES)) if not any(key[1] == c for key, _ in picked)]
        if missing:
            raise DataError(f"{origin}: no {split} images of class(es) {', '.join(missing)}")
        index = np.fromiter((i for _, i in picked), dtype=np.int64, count=len(picked))
        arrays[f"{split}_images"] = images[index]
        arrays[f"{split}_labels"] = np.fromiter((key[1] for key, _ in picked), dtype=np.int64, count=len(picked))
    _check_arrays(arrays, origin)
    return arrays


def _decode_keyed(items: Iterable[tuple[tuple, bytes]], origin: str, workers: int) -> dict[str, np.ndarray]:
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise DataError("decoding the cifar10_webp images needs Pillow with WebP support: pip install pillow") from None
    keys: list[tuple] = []

    def chunks() -> Iterator[list[bytes]]:
        chunk: list[bytes] = []
        for key, blob in items:
            keys.append(key)
            chunk.append(blob)
            if len(chunk) == _DECODE_CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    try:
        decoded = list(_decode_stream(chunks(), workers))
    except ValueError as exc:
        raise DataError(f"{origin}: {exc}") from exc
    if not keys:
        raise DataError(f"{origin}: no images found (expected {{train,test}}/<class>/<NNNN>.webp|png|jpg)")
    return _assemble(keys, np.concatenate(decoded), origin)


def _archive_items(path: Path) -> Iterator[tuple[tuple, bytes]]:
    origin = str(path)
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                match = _MEMBER.match(member.name)
                if not member.isfile() or match is None or not member.name.lower().endswith(_IMAGE_SUFFIXES):
                    continue
                handle = archive.extractfile(member)
                assert handle is not None
                yield _image_key(*match.groups(), origin), handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{origin}: not a readable archive ({exc})") from exc


def _tree_root(source: Path) -> Path:
    for root in (source, source / "cifar10"):
        if all((root / split).is_dir() for split in SPLITS):
            return root
    raise DataError(
        f"{source} is not a CIFAR-10 image-folder tree: expected {source}/{{train,test}}/<class>/*.webp "
        f"(or the same under {source}/cifar10/), or a folder holding {WEBP_ARCHIVE}"
    )


def _tree_items(root: Path) -> Iterator[tuple[tuple, bytes]]:
    for split in SPLITS:
        for class_dir in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            for path in sorted(class_dir.iterdir()):
                if path.is_file() and path.suffix.lower() in _IMAGE_SUFFIXES:
                    yield _image_key(split, class_dir.name, path.name, str(root)), path.read_bytes()


def decode_archive(path: Path, workers: int = DECODE_WORKERS) -> dict[str, np.ndarray]:
    """The four arrays (class-major) decoded from an image-folder archive such as ``cifar10-webp.tar.xz``."""
    return _decode_keyed(_archive_items(Path(path)), str(path), workers)


def decode_tree(source: Path, workers: int = DECODE_WORKERS) -> dict[str, np.ndarray]:
    """The four arrays (class-major) decoded from an extracted ``{train,test}/<class>/`` tree."""
    root = _tree_root(Path(source))
    return _decode_keyed(_tree_items(root), str(root), workers)


def check_fingerprint(arrays: Mapping[str, np.ndarray], expected: str, origin: str) -> None:
    """Raise :class:`DataError` unless the decoded ``arrays`` are the copy with fingerprint ``expected``."""
    actual = fingerprint(arrays)
    if actual == expected:
        return
    counts = ", ".join(f"{len(arrays[f'{s}_labels'])} {s}" for s in SPLITS)
    raise DataError(
        f"the images decoded from {origin} ({counts}) are not the cifar10_webp copy "
        f"(expected {NUM_TRAIN} train and {NUM_TEST} test images with fingerprint {expected}, got {actual}). "
        "Other pixels (another re-encoding, missing or extra images), other labels, or a WebP decoder "
        "that decodes differently would make results incomparable with this dataset's targets."
    )


def webp_source(md5: str = WEBP_MD5, expected_fingerprint: str = WEBP_FINGERPRINT) -> DataSource:
    """The ``cifar10_webp`` source (tests build one over a small archive or tree with its own checksums)."""

    def build(directory: Path) -> None:
        arrays = decode_archive(Path(directory) / WEBP_ARCHIVE)
        check_fingerprint(arrays, expected_fingerprint, str(Path(directory) / WEBP_ARCHIVE))
        write_arrays(directory, arrays)

    def import_local(source: Path, directory: Path) -> str:
        arrays = decode_tree(source)
        check_fingerprint(arrays, expected_fingerprint, str(source))
        write_arrays(directory, arrays)
        return f"{len(arrays['train_labels'])} train + {len(arrays['test_labels'])} test images decoded from an image-folder tree"

    return DataSource("cifar10_webp", (DataFile(WEBP_ARCHIVE, None, md5),),
                      "CIFAR-10, lossy copy (JPEG q75 then WebP q90) in image folders; no public URL: --source PATH.",
                      build=build, build_version="1", import_local=import_local,
                      local_names=("cifar10",))  # local copies sit in cifar10/ (as in ../shared/data)


def official_source(url: str = OFFICIAL_URL, md5: str = OFFICIAL_MD5) -> DataSource:
    """The ``cifar10`` source (tests build one over a small fake archive served locally)."""
    return DataSource("cifar10", (DataFile(OFFICIAL_ARCHIVE, url, md5),),
                      "CIFAR-10 (Krizhevsky 2009), the official python archive: 50,000 train / 10,000 test 32x32 images.",
                      build=build_official, build_version="1")


SOURCES = [official_source(), webp_source()]

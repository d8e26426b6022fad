"""MoleculeNet HIV (the molecules of OGB's ogbg-molhiv) as graph tensors, with a scaffold split.

Source: DeepChem's ``HIV.csv`` (columns ``smiles``, ``activity``, ``HIV_active``): 41,127
molecules, 1,443 of them active (``HIV_active`` = 1, the CM and CA classes). The host's bytes are
not pinned (copies circulate with an extra leading index column, e.g. ``HIV_with_index.csv``), so
the file is verified by *content*: :func:`check_csv` parses either layout and compares an md5 over
the normalised rows (``smiles<TAB>label<LF>`` in file order) and the counts against constants
measured on the local copy.

Cache (:func:`build_cache`, run once by ``laptime data prepare molhiv`` or the first ``locate``):
every SMILES becomes a graph with RDKit, **once**; the result is one file, ``graphs.pt`` (a
``torch.save`` of plain tensors, written atomically), so nothing downstream (the GPU machine
included) needs RDKit:

* ``x`` [num_atoms, 9] uint8 — OGB-style integer atom features: atomic number, chirality tag,
  total degree, formal charge, total number of Hs, radical electrons, hybridisation, aromatic,
  in a ring (vocabularies :data:`ATOM_FEATURES`);
* ``edge_index`` [2, num_edges] int16 — each bond as two directed edges, atom indices *local to
  their molecule*, sorted by (source, target) within a molecule;
* ``edge_attr`` [num_edges, 3] uint8 — bond type, bond stereo, conjugated (:data:`BOND_FEATURES`);
* ``node_ptr``, ``edge_ptr`` [41,128] int64 — molecule ``i`` owns atoms
  ``node_ptr[i]:node_ptr[i+1]`` and edges ``edge_ptr[i]:edge_ptr[i+1]``;
* ``y`` [41,127] uint8 — the ``HIV_active`` labels; ``split_<name>`` — the molecule indices of
  each split (int64, ascending); ``meta`` — the split's name, the RDKit version, the build time.

The features are those of ``torch_geometric.utils.from_smiles`` (same vocabularies, same order,
same edge order; the tests compare the two on real molecules), computed directly from RDKit atoms
and bonds into flat lists: ``from_smiles``, which builds a ``Data`` object per molecule and looks
each value up with ``list.index``, takes about twice as long. Preparation (parsing, features,
scaffolds of all 41,127 molecules) took 51-62 s on this project's busy 2-core VM; the build time
is kept in the cache's ``meta``.

Unlike ``from_smiles``, a SMILES RDKit cannot sanitise is not silently replaced by an empty
molecule: with RDKit 2026.09, 7 organometallic molecules fail the valence check (Al, B, Ge with an
explicit valence above RDKit's limit); they are parsed unsanitised, sanitised without the property
check, and their implicit valences computed non-strictly, so all 41,127 molecules stay (as in
OGB's ogbg-molhiv). Features can change with the RDKit version, which ``meta`` records.

Split: OGB's official scaffold split files are not part of ``HIV.csv``, so laptime makes its own
deterministic scaffold split (:func:`scaffold_split`) with OGB's procedure: Bemis–Murcko scaffolds
(``MurckoScaffoldSmiles(includeChirality=True)``), molecules grouped by scaffold, groups sorted by
size (largest first; ties: the group whose last molecule comes later in the file first), then
train is filled to 80%, validation to 90%, the rest is test: 32,901 / 4,113 / 4,113 molecules
(1,232 / 81 / 130 active; the sizes of OGB's official split). Its name, :data:`SPLIT_NAME`, is part
of the workload's dataset identity. NOTE: a future source carrying OGB's official split files
(``split/scaffold/{train,valid,test}.csv.gz``) would be a *different* dataset identity (another
split name and targets); it is not built here.
"""

from __future__ import annotations

import csv
import hashlib
import io
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

from laptime.atomic import atomic_write
from laptime.data.sources import STAMP_NAME, DataError, DataFile, DataSource

URL = "https://deepchemdata.s3-us-west-1.amazonaws.com/datasets/HIV.csv"
FILENAME = "HIV.csv"
CACHE_FILE = "graphs.pt"
COLUMNS = ("smiles", "activity", "HIV_active")

#: Measured on ``../shared/data/ogbg-molhiv/HIV_with_index.csv`` (md5 b71a06f8f981c4f38aba9f78837c7131):
#: md5 of the normalised rows, number of molecules, number of actives.
CONTENT_MD5 = "8339dcd002dfb27a5477bb83b0544350"
NUM_MOLECULES = 41_127
NUM_ACTIVE = 1_443

SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_NAME = "scaffold-80/10/10-laptime"
#: The dataset identity workloads record: source, content and split.
DATASET_ID = f"molhiv@deepchem-HIV.csv-content:{CONTENT_MD5}+{SPLIT_NAME}"
#: Molecules per split of :data:`SPLIT_NAME` (checked when the cache is built and loaded).
SPLIT_SIZES = {"train": 32_901, "validation": 4_113, "test": 4_113}

#: Integer atom features: (name, vocabulary). A feature's value is its index in the vocabulary.
ATOM_FEATURES: tuple[tuple[str, tuple], ...] = (
    ("atomic_num", tuple(range(119))),
    ("chirality", ("CHI_UNSPECIFIED", "CHI_TETRAHEDRAL_CW", "CHI_TETRAHEDRAL_CCW", "CHI_OTHER", "CHI_TETRAHEDRAL",
                   "CHI_ALLENE", "CHI_SQUAREPLANAR", "CHI_TRIGONALBIPYRAMIDAL", "CHI_OCTAHEDRAL")),
    ("degree", tuple(range(11))),
    ("formal_charge", tuple(range(-5, 7))),
    ("num_hs", tuple(range(9))),
    ("num_radical_electrons", tuple(range(5))),
    ("hybridization", ("UNSPECIFIED", "S", "SP", "SP2", "SP3", "SP3D", "SP3D2", "OTHER")),
    ("is_aromatic", (False, True)),
    ("is_in_ring", (False, True)),
)
#: Integer bond features: (name, vocabulary).
BOND_FEATURES: tuple[tuple[str, tuple], ...] = (
    ("bond_type", ("UNSPECIFIED", "SINGLE", "DOUBLE", "TRIPLE", "QUADRUPLE", "QUINTUPLE", "HEXTUPLE", "ONEANDAHALF",
                   "TWOANDAHALF", "THREEANDAHALF", "FOURANDAHALF", "FIVEANDAHALF", "AROMATIC", "IONIC", "HYDROGEN",
                   "THREECENTER", "DATIVEONE", "DATIVE", "DATIVEL", "DATIVER", "OTHER", "ZERO")),
    ("stereo", ("STEREONONE", "STEREOANY", "STEREOZ", "STEREOE", "STEREOCIS", "STEREOTRANS")),
    ("is_conjugated", (False, True)),
)
#: Embedding table sizes, for models.
ATOM_FEATURE_SIZES = tuple(len(vocab) for _, vocab in ATOM_FEATURES)
BOND_FEATURE_SIZES = tuple(len(vocab) for _, vocab in BOND_FEATURES)


# =========================================================================== the CSV


def read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    """``(smiles, labels)`` of an HIV CSV, with or without a leading index column.

    Raises :class:`DataError` on another header, a short row or a label other than 0/1.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    rows = csv.reader(io.StringIO(text, newline=""))
    header = next(rows, None)
    if header is None:
        raise DataError("the file is empty")
    if tuple(header) == COLUMNS:
        skip = 0
    elif tuple(header[1:]) == COLUMNS:
        skip = 1  # a leading index column (e.g. a pandas re-export)
    else:
        raise DataError(f"unexpected header {header!r}; expected {list(COLUMNS)}, optionally after an index column")
    smiles: list[str] = []
    labels: list[int] = []
    width = len(header)
    for line, row in enumerate(rows, start=2):
        if len(row) != width:
            raise DataError(f"line {line}: {len(row)} fields, expected {width}")
        label = row[skip + 2]
        if label not in ("0", "1"):
            raise DataError(f"line {line}: HIV_active is {label!r}, expected 0 or 1")
        smiles.append(row[skip])
        labels.append(label == "1")
    return smiles, np.array(labels, dtype=np.uint8)


def content_md5(smiles: Sequence[str], labels: np.ndarray) -> str:
    """md5 over the normalised rows: ``smiles<TAB>label<LF>`` for every molecule in file order."""
    digest = hashlib.md5()
    for s, y in zip(smiles, labels.tolist()):
        digest.update(f"{s}\t{y}\n".encode())
    return digest.hexdigest()


def make_check(expected_md5: str, num_molecules: int, num_active: int):
    """A content check (for :class:`DataFile`) against the given fingerprint."""

    def check(path: Path) -> None:
        smiles, labels = read_csv(path)
        active = int(labels.sum())
        if (len(smiles), active) != (num_molecules, num_active):
            raise DataError(
                f"{len(smiles)} molecules with {active} active, expected {num_molecules} with {num_active}"
            )
        actual = content_md5(smiles, labels)
        if actual != expected_md5:
            raise DataError(f"content md5 {actual} (of the smiles and labels), expected {expected_md5}")

    return check


check_csv = make_check(CONTENT_MD5, NUM_MOLECULES, NUM_ACTIVE)


# =========================================================================== featurisation


def _enum_lookup(enum_type, vocabulary: Sequence[str]) -> dict[int, int]:
    """RDKit enum value (as int) → index in ``vocabulary`` (by the enum member's name)."""
    return {int(value): vocabulary.index(member.name)
            for value, member in enum_type.values.items() if member.name in vocabulary}


def _parse(smiles: str):
    """An RDKit molecule; one that fails sanitisation is sanitised without the valence check."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    if mol is not None:
        return mol, False
    mol = Chem.MolFromSmiles(smiles, sanitize=False)
    if mol is None:
        raise DataError(f"RDKit cannot parse the SMILES {smiles!r}")
    try:
        mol.UpdatePropertyCache(strict=False)
        Chem.SanitizeMol(mol, Chem.SanitizeFlags.SANITIZE_ALL ^ Chem.SanitizeFlags.SANITIZE_PROPERTIES)
    except Exception as exc:  # RDKit raises its own exception types
        raise DataError(f"RDKit cannot sanitise the SMILES {smiles!r}: {exc}") from exc
    return mol, True


def _scaffold(mol, relaxed: bool) -> str:
    """The Bemis–Murcko scaffold SMILES, with chirality (``MurckoScaffoldSmiles(includeChirality=True)``).

    For a molecule that needed the relaxed sanitisation, the same steps (``MurckoDecompose``, ring
    perception, ``MolToSmiles``) with implicit valences computed non-strictly, since
    ``MurckoScaffoldSmiles`` re-checks valences.
    """
    from rdkit import Chem
    from rdkit.Chem.Scaffolds import MurckoScaffold

    if not relaxed:
        return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=True)
    scaffold = Chem.MurckoDecompose(mol)
    scaffold.ClearComputedProps()
    scaffold.UpdatePropertyCache(strict=False)
    Chem.GetSymmSSSR(scaffold)
    return Chem.MolToSmiles(scaffold, isomericSmiles=True)


class _Featuriser:
    """Atom and bond feature rows of RDKit molecules (the vocabularies above)."""

    def __init__(self) -> None:
        from rdkit import Chem

        vocab = dict(ATOM_FEATURES)
        self.chirality = _enum_lookup(Chem.rdchem.ChiralType, vocab["chirality"])
        self.hybridization = _enum_lookup(Chem.rdchem.HybridizationType, vocab["hybridization"])
        bond_vocab = dict(BOND_FEATURES)
        self.bond_type = _enum_lookup(Chem.rdchem.BondType, bond_vocab["bond_type"])
        self.stereo = _enum_lookup(Chem.rdchem.BondStereo, bond_vocab["stereo"])
        self.limits = ATOM_FEATURE_SIZES

    def atoms(self, mol) -> list[tuple[int, ...]]:
        rows = []
        for j in range(mol.GetNumAtoms()):  # faster than iterating GetAtoms()' Python wrapper
            atom = mol.GetAtomWithIdx(j)
            rows.append((
                atom.GetAtomicNum(),
                self.chirality[int(atom.GetChiralTag())],
                atom.GetTotalDegree(),
                atom.GetFormalCharge() + 5,
                atom.GetTotalNumHs(),
                atom.GetNumRadicalElectrons(),
                self.hybridization[int(atom.GetHybridization())],
                int(atom.GetIsAromatic()),
                int(atom.IsInRing()),
            ))
        return rows

    def bonds(self, mol) -> list[tuple[int, int, int, int, int]]:
        """``(begin, end, type, stereo, conjugated)`` per bond."""
        return [
            (b.GetBeginAtomIdx(), b.GetEndAtomIdx(), self.bond_type[int(b.GetBondType())],
             self.stereo[int(b.GetStereo())], int(b.GetIsConjugated()))
            for b in map(mol.GetBondWithIdx, range(mol.GetNumBonds()))
        ]


def featurise(smiles_list: Sequence[str]) -> dict[str, torch.Tensor | int]:
    """Graph tensors of many molecules (the cache's ``x``, ``edge_index``, ``edge_attr``, pointers)
    plus their Bemis–Murcko scaffolds (``scaffolds``, a list) and the number of molecules that
    needed the relaxed sanitisation (``relaxed``)."""
    import torch  # here, not at the top: the source table (laptime.data) must not import torch at start-up
    from rdkit.rdBase import BlockLogs

    blocker = BlockLogs()  # RDKit's valence complaints, while parsing; logging resumes when it is deleted
    feats = _Featuriser()
    atom_rows: list[tuple[int, ...]] = []
    bond_rows: list[tuple[int, ...]] = []
    node_counts = np.zeros(len(smiles_list), dtype=np.int64)
    bond_counts = np.zeros(len(smiles_list), dtype=np.int64)
    scaffolds: list[str] = []
    relaxed = 0
    for i, smiles in enumerate(smiles_list):
        try:
            mol, was_relaxed = _parse(smiles)
            atoms = feats.atoms(mol)
            bonds = feats.bonds(mol)
        except KeyError as exc:
            raise DataError(f"molecule {i} ({smiles!r}) has a feature outside the vocabularies: {exc}") from exc
        relaxed += was_relaxed
        atom_rows.extend(atoms)
        bond_rows.extend(bonds)
        node_counts[i], bond_counts[i] = len(atoms), len(bonds)
        scaffolds.append(_scaffold(mol, was_relaxed))
    del blocker

    x = np.array(atom_rows, dtype=np.int64).reshape(-1, len(ATOM_FEATURES))
    bad = np.nonzero((x < 0) | (x >= np.array(ATOM_FEATURE_SIZES)))
    if len(bad[0]):
        row, col = int(bad[0][0]), int(bad[1][0])
        raise DataError(f"atom {row}: feature {ATOM_FEATURES[col][0]!r} is outside its vocabulary")
    bonds = np.array(bond_rows, dtype=np.int64).reshape(-1, 5)
    # two directed edges per bond, (begin, end) and (end, begin), sorted by (source, target) within
    # each molecule — the order torch_geometric's from_smiles gives
    edge_counts = 2 * bond_counts
    graph_of_bond = np.repeat(np.arange(len(smiles_list)), bond_counts)
    src = np.concatenate([bonds[:, 0], bonds[:, 1]])
    dst = np.concatenate([bonds[:, 1], bonds[:, 0]])
    attr = np.concatenate([bonds[:, 2:], bonds[:, 2:]])
    graph = np.concatenate([graph_of_bond, graph_of_bond])
    order = np.lexsort((dst, src, graph))
    if node_counts.max(initial=0) > np.iinfo(np.int16).max:
        raise DataError(f"a molecule has {node_counts.max()} atoms, more than int16 atom indices hold")
    return {
        "x": torch.from_numpy(x.astype(np.uint8)),
        "edge_index": torch.from_numpy(np.stack([src[order], dst[order]]).astype(np.int16)),
        "edge_attr": torch.from_numpy(attr[order].astype(np.uint8)),
        "node_ptr": torch.from_numpy(np.concatenate([[0], np.cumsum(node_counts)])),
        "edge_ptr": torch.from_numpy(np.concatenate([[0], np.cumsum(edge_counts)])),
        "scaffolds": scaffolds,
        "relaxed": relaxed,
    }


# =========================================================================== the split


def scaffold_split(scaffolds: Sequence[str], fractions: Sequence[float] = SPLIT_FRACTIONS) -> dict[str, np.ndarray]:
    """OGB's scaffold-split procedure: whole scaffold groups, largest first, fill train then validation.

    Groups are sorted by size, largest first; ties go to the group whose last molecule comes
    later in the file. A group goes to train unless that would take train past
    ``fractions[0]`` of the molecules, else to validation unless that would take train +
    validation past ``fractions[0] + fractions[1]``, else to test. Deterministic.
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    groups: dict[str, list[int]] = {}
    for i, scaffold in enumerate(scaffolds):
        groups.setdefault(scaffold, []).append(i)
    ordered = sorted(groups.values(), key=lambda g: (len(g), g[-1]), reverse=True)
    n = len(scaffolds)
    train_cut, valid_cut = fractions[0] * n, (fractions[0] + fractions[1]) * n
    train: list[int] = []
    valid: list[int] = []
    test: list[int] = []
    for group in ordered:
        if len(train) + len(group) <= train_cut:
            train.extend(group)
        elif len(train) + len(valid) + len(group) <= valid_cut:
            valid.extend(group)
        else:
            test.extend(group)
    return {name: np.sort(np.array(ids, dtype=np.int64)) for name, ids in
            (("train", train), ("validation", valid), ("test", test))}


# =========================================================================== the cache


def build_cache(directory: Path) -> None:
    """Featurise every molecule of ``directory/HIV.csv``, split by scaffold, write ``graphs.pt``."""
    import torch

    try:
        from rdkit import __version__ as rdkit_version
    except ImportError as exc:
        raise DataError(
            "preparing molhiv turns SMILES into graphs with RDKit, which is not installed (pip install rdkit); "
            f"or copy a prepared dataset directory ({FILENAME}, {CACHE_FILE}, {STAMP_NAME}) from another machine"
        ) from exc

    started = time.perf_counter()
    smiles, labels = read_csv(Path(directory) / FILENAME)
    graphs = featurise(smiles)
    splits = scaffold_split(graphs.pop("scaffolds"))
    sizes = {name: len(ids) for name, ids in splits.items()}
    if len(smiles) == NUM_MOLECULES and sizes != SPLIT_SIZES:
        raise DataError(f"the scaffold split came out as {sizes}, expected {SPLIT_SIZES} (another RDKit version?)")
    relaxed = graphs.pop("relaxed")
    payload = {
        **graphs,
        "y": torch.from_numpy(labels),
        **{f"split_{name}": torch.from_numpy(ids) for name, ids in splits.items()},
        "meta": {
            "split": SPLIT_NAME,
            "content_md5": content_md5(smiles, labels),
            "rdkit": str(rdkit_version),
            "relaxed_sanitisation": int(relaxed),
            "build_seconds": round(time.perf_counter() - started, 1),
        },
    }
    with atomic_write(Path(directory) / CACHE_FILE, "wb") as handle:
        torch.save(payload, handle)


def load_cache(directory: Path) -> dict:
    """The tensors written by :func:`build_cache` (on the CPU)."""
    import torch

    path = Path(directory) / CACHE_FILE
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as exc:
        raise DataError(f"cannot read the molhiv graph cache {path}: {exc}; rebuild it with "
                        "`laptime data prepare molhiv --force`") from exc
    if payload.get("meta", {}).get("split") != SPLIT_NAME:
        raise DataError(f"{path} holds another split ({payload.get('meta', {}).get('split')!r}), expected {SPLIT_NAME!r}")
    return payload


SOURCES = [
    DataSource(
        name="molhiv",
        files=(DataFile(FILENAME, URL, md5=None, check=check_csv, aliases=("HIV_with_index.csv",)),),
        description=(
            "MoleculeNet HIV (the molecules of ogbg-molhiv): 41,127 SMILES, 1,443 active; cached as "
            "OGB-style graph tensors (RDKit) with a deterministic scaffold split 80/10/10."
        ),
        build=lambda directory: build_cache(directory),
        build_version="1",
        local_names=("ogbg-molhiv",),
    ),
]

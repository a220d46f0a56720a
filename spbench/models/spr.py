"""The Spatial-Pose Representation (SPR) of SP-Ctrl: learned per-keypoint embeddings drawn into the pose map.

Fixed inputs ``E0`` [17, 768] go through an MLP ``G`` (Linear 768→256, three blocks of
[Linear, GELU, Dropout, Linear, Dropout] each followed by LayerNorm, Linear 256→C'); pixel value
k+1 of the index map gets ``G(E0)[k]``, limb value 51+j gets skeleton row j, everything else 0.
For a schema file's keypoint set, K rows of E0 and one skeleton row per limb of its skeleton,
limb j at ``limb_index_offset(K) + j`` (51 + j up to 50 keypoints; :mod:`spbench.schemas`).
Parameter names follow the official checkpoint (``spatext_embedding.`` prefix there), so its
weights load unchanged. :meth:`forward` builds a 256-row lookup table and gathers once;
:meth:`forward_masked` is the official loop over masks, kept as the reference it must equal.
"""

from __future__ import annotations

import torch
from torch import nn

from spbench.errors import SpbenchError
from spbench.schemas import AP10K, KEYPOINT_INDEX_OFFSET, limb_index_offset

NUM_KEYPOINTS = 17  # the official SPR's (AP-10K, COCO-17); a schema file's K otherwise
NUM_LIMBS = 17
EMBEDDING_DIM = 768
HIDDEN_DIM = 256
DROPOUT = 0.2
SKELETON_TYPES = ("one", "zero", "rand", "interp_kpt")
# "sigmoid_version" squashes the keypoint rows into (0, 1) (an official variant of the layer).
LAYER_VERSIONS = (None, "sigmoid_version")
# Index maps are uint8 images: one table row per possible value.
TABLE_SIZE = 256


class MLPBlock(nn.Module):
    def __init__(self, dim: int, dropout: float):
        super().__init__()
        # Indices 0 and 3 hold the Linears, as in the official checkpoint (mlps.N.ff.0 / ff.3).
        self.ff = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ff(x)


class SpatialPoseRepresentation(nn.Module):
    """SPR: ``forward(index_map [B, H, W]) -> [B, C', H, W]``.

    ``init_embedding`` gives E0 (e.g. text embeddings of the keypoint names, any width); without
    it E0 is ``randn(17, 768)`` from a generator seeded with ``seed``, which also seeds the MLP's
    initialisation. ``limbs`` are the 17 keypoint pairs behind limb values 51..67, used only by
    ``skeleton_type="interp_kpt"`` (the official code always uses AP-10K's).

    ``num_keypoints`` (K) and ``limbs`` size the tables for another keypoint set: E0 [K, 768],
    one skeleton row per limb, limb j at index value ``limb_index_offset(K) + j``. The defaults
    are the official SPR's.
    """

    def __init__(
        self,
        cond_channels: int = 3,
        *,
        init_embedding: torch.Tensor | None = None,
        embedding_dim: int = EMBEDDING_DIM,
        seed: int = 0,
        skeleton_type: str = "one",
        learnable_e0: bool = False,
        learnable_skeleton: bool = False,
        detach_kpt_grad_from_sks: bool = False,
        layer_version: str | None = None,
        limbs: tuple[tuple[int, int], ...] = AP10K.indexed_limbs,
        hidden_dim: int = HIDDEN_DIM,
        dropout: float = DROPOUT,
        num_keypoints: int = NUM_KEYPOINTS,
    ):
        super().__init__()
        _check_settings(cond_channels, skeleton_type, learnable_skeleton, layer_version, limbs, num_keypoints)
        self.num_keypoints = num_keypoints
        self.num_limbs = len(limbs)
        self.limb_offset = limb_index_offset(num_keypoints)
        self.cond_channels = cond_channels
        self.skeleton_type = skeleton_type
        self.detach_kpt_grad_from_sks = detach_kpt_grad_from_sks
        self.layer_version = layer_version
        self.register_buffer("limb_pairs", torch.tensor(limbs, dtype=torch.long), persistent=False)

        generator = torch.Generator().manual_seed(seed)
        if init_embedding is None:
            e0 = torch.randn(num_keypoints, embedding_dim, generator=generator)
        else:
            e0 = torch.as_tensor(init_embedding, dtype=torch.float32).detach().clone()
            if e0.ndim != 2 or e0.shape[0] != num_keypoints:
                raise SpbenchError(f"SPR init embedding has shape {tuple(e0.shape)}: expected [{num_keypoints}, dim]")
        n_limbs = self.num_limbs
        skeleton = {
            "one": lambda: torch.ones(n_limbs, cond_channels),
            "zero": lambda: torch.zeros(n_limbs, cond_channels),
            "rand": lambda: torch.randn(n_limbs, cond_channels, generator=generator),
            # Kept (as zeros) so the checkpoint has the key; the rows are computed from keypoints.
            "interp_kpt": lambda: torch.zeros(n_limbs, cond_channels),
        }[skeleton_type]()
        # Fixed tensors are buffers, so `requires_grad_(True)` on the whole model cannot make them train.
        _register(self, "keypoint_emb", e0, learnable_e0)
        _register(self, "skeleton_emb", skeleton, learnable_skeleton)

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.linear_in = nn.Linear(e0.shape[1], hidden_dim)
            blocks = []
            for _ in range(3):
                blocks += [MLPBlock(hidden_dim, dropout), nn.LayerNorm(hidden_dim)]
            self.mlps = nn.Sequential(*blocks)
            self.linear_out = nn.Linear(hidden_dim, cond_channels)

    def keypoint_embeddings(self) -> torch.Tensor:
        """``G(E0)``: [K, C'] (through a sigmoid for the official "sigmoid_version")."""
        e0 = self.keypoint_emb.to(self.linear_in.weight.dtype)
        rows = self.linear_out(self.mlps(self.linear_in(e0)))
        return torch.sigmoid(rows) if self.layer_version == "sigmoid_version" else rows

    def skeleton_embeddings(self, keypoint_rows: torch.Tensor) -> torch.Tensor:
        """[limbs, C']: the stored rows, or for "interp_kpt" the mean of each limb's two keypoint rows."""
        if self.skeleton_type != "interp_kpt":
            return self.skeleton_emb.to(keypoint_rows.dtype)
        rows = keypoint_rows.detach() if self.detach_kpt_grad_from_sks else keypoint_rows
        return 0.5 * (rows[self.limb_pairs[:, 0]] + rows[self.limb_pairs[:, 1]])

    def embedding_table(self) -> torch.Tensor:
        """[256, C']: row v is the embedding of index value v (zeros for background and unused values)."""
        kpt = self.keypoint_embeddings()
        sks = self.skeleton_embeddings(kpt)
        gap = self.limb_offset - KEYPOINT_INDEX_OFFSET - self.num_keypoints
        tail = TABLE_SIZE - self.limb_offset - self.num_limbs
        zeros = kpt.new_zeros
        return torch.cat([zeros(KEYPOINT_INDEX_OFFSET, self.cond_channels), kpt, zeros(gap, self.cond_channels),
                          sks, zeros(tail, self.cond_channels)])

    def forward(self, index_map: torch.Tensor) -> torch.Tensor:
        """``index_map``: integer values [B, H, W]; returns [B, C', H, W] (one gather, no loop)."""
        # Values outside 0..255 cannot come from a uint8 map; clamping sends them to zero rows.
        index = index_map.long().clamp(0, TABLE_SIZE - 1)
        b, h, w = index.shape
        # Selecting from the transposed table [C', 256] gives [C', B, H, W]; swapping the two
        # leading axes makes it NCHW. Its backward (index_add) is 2x faster than F.embedding's
        # on CPU, its forward about as fast (benchmarks/spr_gather.py; BENCHMARKS.md).
        table = self.embedding_table().t().contiguous()
        out = table.index_select(1, index.reshape(-1)).view(self.cond_channels, b, h, w)
        return out.transpose(0, 1).contiguous()

    def forward_masked(self, index_map: torch.Tensor) -> torch.Tensor:
        """The official formulation: sum over keypoints and limbs of mask · embedding (reference)."""
        kpt = self.keypoint_embeddings()
        sks = self.skeleton_embeddings(kpt)
        b, h, w = index_map.shape
        out = kpt.new_zeros(b, self.cond_channels, h, w)
        for k in range(self.num_keypoints):
            out = out + (index_map == KEYPOINT_INDEX_OFFSET + k).unsqueeze(1) * kpt[k].view(1, -1, 1, 1)
        for j in range(self.num_limbs):
            out = out + (index_map == self.limb_offset + j).unsqueeze(1) * sks[j].view(1, -1, 1, 1)
        return out


def _register(module: nn.Module, name: str, value: torch.Tensor, learnable: bool) -> None:
    if learnable:
        module.register_parameter(name, nn.Parameter(value))
    else:
        module.register_buffer(name, value)


def _check_settings(cond_channels, skeleton_type, learnable_skeleton, layer_version, limbs, num_keypoints=NUM_KEYPOINTS) -> None:
    if not isinstance(cond_channels, int) or cond_channels < 1:
        raise SpbenchError(f"SPR channels C' = {cond_channels!r} (spatext_cond_channels / method.options.cond_channels): use an integer >= 1")
    if skeleton_type not in SKELETON_TYPES:
        raise SpbenchError(f"unknown SPR skeleton type {skeleton_type!r} (spatext_skeleton_type / method.options.skeleton_type): use one of {', '.join(SKELETON_TYPES)}")
    if skeleton_type == "interp_kpt" and learnable_skeleton:
        raise SpbenchError("SPR skeleton type 'interp_kpt' computes limb rows from keypoints, so they cannot also be learnable: drop spatext_enable_learn_sks / method.options.learnable_skeleton")
    if layer_version not in LAYER_VERSIONS:
        raise SpbenchError(f"unknown SPR layer version {layer_version!r} (spatext_layer_version): use null or 'sigmoid_version'")
    if not isinstance(num_keypoints, int) or num_keypoints < 1:
        raise SpbenchError(f"SPR keypoint count {num_keypoints!r}: use an integer >= 1")
    if limb_index_offset(num_keypoints) + len(limbs) > TABLE_SIZE:
        raise SpbenchError(f"SPR with {num_keypoints} keypoints and {len(limbs)} limbs needs index values up to "
                           f"{limb_index_offset(num_keypoints) + len(limbs) - 1}, more than the uint8 map holds (255)")
    if not limbs or any(not (0 <= a < num_keypoints and 0 <= b < num_keypoints) for a, b in limbs):
        raise SpbenchError(f"SPR limbs: expected at least one pair of keypoints in 0..{num_keypoints - 1}, got {tuple(limbs)[:4]}")

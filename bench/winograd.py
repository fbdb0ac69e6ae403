"""Would a Winograd convolution make exact mode faster on this CPU? One 3x3 layer, measured.

Usage (from the repository root):

    python bench/winograd.py [--size 1024] [--channels 32 64] [--repeat 3]

For each channel width (the network's 3x3 layers are 32 -> 32 and 64 -> 64), on a random
non-negative size x size feature map (a leaky-ReLU output), the script times:

- `direct`: the convolution exact mode runs (oneDNN, channels-last fp32);
- `direct bf16`: the same in bfloat16 (inputs, weights and output; not exact, for comparison);
- `F(m,3)`: Winograd F(m x m, 3 x 3) in PyTorch operations, in strips of tile rows: gather the
  (m+2) x (m+2) input tiles, transform them (one matrix product with the Kronecker matrix B^T x B^T),
  one batched matrix product per transformed position ((m+2)^2 of them, each tiles x C_in by
  C_in x C_out), inverse transform and scatter. Its `gemm` column is the batched products alone: the
  (m+2)^2 / (9 m^2) share of the direct convolution's multiplications (F(2,3): 44%, F(4,3): 25%);
- `F(4,3) numba` (when numba and scipy are installed): the same algorithm with the gather and both
  transforms compiled (one parallel loop over chunks of tiles, each chunk staying in cache) and the
  products by BLAS;

and the numerical error of each against the float64 direct convolution (largest absolute error,
and relative to the largest output). Prints one row per method and width.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

# Winograd F(m, 3) matrices (Lavin and Gray, 2016): Y = A^T [(G g G^T) * (B^T d B)] A.
WINOGRAD = {
    2: {
        "BT": [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        "G": [[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]],
        "AT": [[1, 1, 1, 0], [0, 1, -1, -1]],
    },
    4: {
        "BT": [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
               [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        "G": [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        "AT": [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    },
}
STRIP_TILE_ROWS = 2  # tile rows per strip (fastest of 2-32 at 1024 px, 64 channels)
NUMBA_CHUNK_TILES = 128  # tiles per chunk of the compiled variant (fastest of 64-256)


class TorchWinograd:
    """Winograd F(m, 3) with zero padding in PyTorch operations (strips of tile rows)."""

    def __init__(self, m: int, weight: torch.Tensor):
        matrices = {k: torch.tensor(v, dtype=torch.float64) for k, v in WINOGRAD[m].items()}
        self.m, self.n = m, m + 2
        self.input_transform = torch.kron(matrices["BT"], matrices["BT"]).float()  # (n^2, n^2)
        self.output_transform = torch.kron(matrices["AT"], matrices["AT"]).float()  # (m^2, n^2)
        g = matrices["G"]
        transformed = torch.einsum("ar,ocrs,bs->aboc", g, weight.double(), g)  # (n, n, C_out, C_in)
        self.weight = transformed.reshape(self.n**2, *weight.shape[:2]).transpose(1, 2).float().contiguous()
        self.gemm_seconds = 0.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: (H, W, C_in) channels-last float32 -> (H, W, C_out)."""
        height, width, channels = x.shape
        m, n = self.m, self.n
        tile_rows, tile_cols = -(-height // m), -(-width // m)
        padded = x.new_zeros(m * tile_rows + 2, m * tile_cols + 2, channels)
        padded[1 : height + 1, 1 : width + 1] = x
        out = x.new_empty(m * tile_rows, m * tile_cols, self.weight.shape[2])
        row_stride = padded.stride(0)
        self.gemm_seconds = 0.0
        for first in range(0, tile_rows, STRIP_TILE_ROWS):
            rows = min(STRIP_TILE_ROWS, tile_rows - first)
            tiles = padded[m * first :].as_strided(
                (n, n, rows, tile_cols, channels), (row_stride, channels, m * row_stride, m * channels, 1)
            )
            transformed = (self.input_transform @ tiles.reshape(n * n, -1)).view(n * n, rows * tile_cols, channels)
            start = time.perf_counter()
            products = torch.bmm(transformed, self.weight)
            self.gemm_seconds += time.perf_counter() - start
            result = (self.output_transform @ products.view(n * n, -1)).view(m, m, rows, tile_cols, -1)
            out[m * first : m * (first + rows)].view(rows, m, tile_cols, m, -1).copy_(result.permute(2, 0, 3, 1, 4))
        return out[:height, :width]


def numba_winograd_f43(weight: torch.Tensor):
    """The compiled F(4,3) variant, or None when numba or scipy (BLAS inside numba) is missing."""
    try:
        import numba
        import numpy as np
        import scipy  # noqa: F401  (numba's np.dot calls scipy's BLAS)
    except ImportError:
        return None
    f2, f4, f5, f8 = (np.float32(v) for v in (2, 4, 5, 8))

    @numba.njit(inline="always")
    def source(k, size):  # zero padding: -1 means outside
        return k if 0 <= k < size else -1

    @numba.njit(parallel=True, boundscheck=False)
    def convolve(x, u, out, scratch_in, scratch_out):
        height, width, channels = x.shape
        tile_cols = (width + 3) // 4
        tiles = ((height + 3) // 4) * tile_cols
        workers, _, chunk, _ = scratch_in.shape
        zero = np.zeros(channels, np.float32)
        for worker in numba.prange(workers):
            v, mm = scratch_in[worker], scratch_out[worker]
            e = np.empty((6, 6, channels), np.float32)
            eo = np.empty((4, 6, out.shape[2]), np.float32)
            for first in range(worker * chunk, tiles, workers * chunk):
                count = min(chunk, tiles - first)
                for t in range(count):
                    i, j = (first + t) // tile_cols, (first + t) % tile_cols
                    for b in range(6):
                        s = source(4 * j - 1 + b, width)
                        r0, r1, r2 = source(4 * i - 1, height), source(4 * i, height), source(4 * i + 1, height)
                        r3, r4, r5 = source(4 * i + 2, height), source(4 * i + 3, height), source(4 * i + 4, height)
                        p0 = x[r0, s] if (r0 >= 0 and s >= 0) else zero
                        p1 = x[r1, s] if (r1 >= 0 and s >= 0) else zero
                        p2 = x[r2, s] if (r2 >= 0 and s >= 0) else zero
                        p3 = x[r3, s] if (r3 >= 0 and s >= 0) else zero
                        p4 = x[r4, s] if (r4 >= 0 and s >= 0) else zero
                        p5 = x[r5, s] if (r5 >= 0 and s >= 0) else zero
                        for c in range(channels):
                            d0, d1, d2, d3, d4, d5 = p0[c], p1[c], p2[c], p3[c], p4[c], p5[c]
                            e[0, b, c] = f4 * d0 - f5 * d2 + d4
                            e[1, b, c] = -f4 * d1 - f4 * d2 + d3 + d4
                            e[2, b, c] = f4 * d1 - f4 * d2 - d3 + d4
                            e[3, b, c] = -f2 * d1 - d2 + f2 * d3 + d4
                            e[4, b, c] = f2 * d1 - d2 - f2 * d3 + d4
                            e[5, b, c] = f4 * d1 - f5 * d3 + d5
                    for a in range(6):
                        for c in range(channels):
                            d0, d1, d2, d3, d4, d5 = e[a, 0, c], e[a, 1, c], e[a, 2, c], e[a, 3, c], e[a, 4, c], e[a, 5, c]
                            v[6 * a, t, c] = f4 * d0 - f5 * d2 + d4
                            v[6 * a + 1, t, c] = -f4 * d1 - f4 * d2 + d3 + d4
                            v[6 * a + 2, t, c] = f4 * d1 - f4 * d2 - d3 + d4
                            v[6 * a + 3, t, c] = -f2 * d1 - d2 + f2 * d3 + d4
                            v[6 * a + 4, t, c] = f2 * d1 - d2 - f2 * d3 + d4
                            v[6 * a + 5, t, c] = f4 * d1 - f5 * d3 + d5
                for k in range(36):
                    np.dot(v[k, :count], u[k], mm[k, :count])
                for t in range(count):
                    i, j = (first + t) // tile_cols, (first + t) % tile_cols
                    for b in range(6):
                        for c in range(out.shape[2]):
                            m0, m1, m2 = mm[b, t, c], mm[6 + b, t, c], mm[12 + b, t, c]
                            m3, m4, m5 = mm[18 + b, t, c], mm[24 + b, t, c], mm[30 + b, t, c]
                            eo[0, b, c] = m0 + m1 + m2 + m3 + m4
                            eo[1, b, c] = m1 - m2 + f2 * (m3 - m4)
                            eo[2, b, c] = m1 + m2 + f4 * (m3 + m4)
                            eo[3, b, c] = m1 - m2 + f8 * (m3 - m4) + m5
                    for r in range(4):
                        for q in range(4):
                            if 4 * i + r < height and 4 * j + q < width:
                                for c in range(out.shape[2]):
                                    m0, m1, m2 = eo[r, 0, c], eo[r, 1, c], eo[r, 2, c]
                                    m3, m4, m5 = eo[r, 3, c], eo[r, 4, c], eo[r, 5, c]
                                    if q == 0:
                                        y = m0 + m1 + m2 + m3 + m4
                                    elif q == 1:
                                        y = m1 - m2 + f2 * (m3 - m4)
                                    elif q == 2:
                                        y = m1 + m2 + f4 * (m3 + m4)
                                    else:
                                        y = m1 - m2 + f8 * (m3 - m4) + m5
                                    out[4 * i + r, 4 * j + q, c] = y

    transformed = TorchWinograd(4, weight).weight.numpy()
    workers = numba.get_num_threads()

    def run(x: torch.Tensor) -> torch.Tensor:
        out = torch.empty(*x.shape[:2], weight.shape[0])
        shape = (workers, 36, NUMBA_CHUNK_TILES)
        convolve(x.numpy(), transformed, out.numpy(), np.empty((*shape, x.shape[2]), np.float32),
                 np.empty((*shape, weight.shape[0]), np.float32))
        return out

    return run


def best_time(function, repeat: int) -> float:
    function()  # warm-up (and compilation)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--channels", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.size} x {args.size} map")
    for channels in args.channels:
        x = torch.randn(1, channels, args.size, args.size).clamp_min(0).contiguous(memory_format=torch.channels_last)
        weight = torch.randn(channels, channels, 3, 3) * (2 / (9 * channels)) ** 0.5
        reference = F.conv2d(x.double(), weight.double(), padding=1)[0].permute(1, 2, 0)
        scale = reference.abs().max().item()
        channels_last_weight = weight.contiguous(memory_format=torch.channels_last)
        image = x[0].permute(1, 2, 0)  # (H, W, C) view of the channels-last map

        def direct():
            return F.conv2d(x, channels_last_weight, padding=1)[0].permute(1, 2, 0)

        half_x, half_weight = x.bfloat16(), channels_last_weight.bfloat16()

        def direct_bf16():  # oneDNN's bf16 kernels (AMX where the CPU has it); its output is bf16
            return F.conv2d(half_x, half_weight, padding=1)[0].permute(1, 2, 0)

        methods = {"direct": direct, "direct bf16": direct_bf16}
        winograds = {m: TorchWinograd(m, weight) for m in WINOGRAD}
        for m, winograd in winograds.items():
            methods[f"F({m},3)"] = lambda winograd=winograd: winograd(image)
        compiled = numba_winograd_f43(weight)
        if compiled is not None:
            methods["F(4,3) numba"] = lambda: compiled(image)
        direct_seconds = None
        for name, method in methods.items():
            seconds = best_time(method, args.repeat)
            direct_seconds = direct_seconds or seconds
            error = (method().double() - reference).abs().max().item()
            gemm = ""
            if name.startswith("F(") and "numba" not in name:
                gemm = f", gemm alone {winograds[int(name[2])].gemm_seconds:.4f} s"
            print(f"C={channels:<3} {name:<13} {seconds:.4f} s ({direct_seconds / seconds:.2f}x direct{gemm}), "
                  f"max error {error:.2e} ({error / scale:.1e} of the largest output)")


if __name__ == "__main__":
    # before scipy loads OpenBLAS: the compiled variant calls BLAS inside its own parallel loop
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    main()

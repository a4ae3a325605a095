// Weight-only linear kernels for x86-64 CPUs with AVX2 and FMA, or AVX-512: int8 weights
// (per-output-channel scale) and bfloat16 weights, float32 activations and sums. Built at run
// time by x86_kernels.py, once per instruction set (x86_simd.h: 16-lane AVX-512 or 8-lane AVX2).
//
// Why: decoding one token reads every weight once. PyTorch's own int8 kernel
// (_weight_int8pack_mm) is compute-bound at one row on AVX2 and falls below float32 from 32
// rows; FBGEMM's fp16 linear holds bfloat16 well at one row but reads several weight rows at
// once. Here weights are packed in tiles of 64 output channels, [K][64], so one row reads a layer
// as one sequential stream per thread (a cache line of int8 per K-step) and widens it in
// registers; several rows widen a block of the tile once and run a register tile of up to 6 rows
// over it.
//
// Batch invariance: every output element is one FMA chain over k = 0..K-1 in increasing order,
// started at zero, then times the channel's scale, whatever the row count. Only how rows and
// channels are grouped into register tiles changes with the row count, never the arithmetic of
// one element, so a request's numbers do not depend on the requests decoded beside it. (Nor on
// the vector width: a fused multiply-add rounds once in either, so both builds agree bit for bit.)
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "x86_simd.h"

namespace {

using namespace fasttts;

#if defined(FASTTTS_AVX512)
constexpr int64_t NR = 4;  // vectors per register-tile row: 6 x 4 accumulators of 32 zmm registers
#else
constexpr int64_t NR = 2;  // vectors per register-tile row: 6 x 2 accumulators of 16 ymm registers
#endif

constexpr int64_t TILE = 64;         // output channels per packed tile: a K-step of int8 weights is one cache line
constexpr int64_t VECS = TILE / LANES;
constexpr int64_t MR = 6;            // rows per register tile of the many-row path
constexpr int64_t KBLOCK = 64;       // K-steps widened at a time: a 16 KB float32 panel, in L1
static_assert(NR <= 4 && TILE % (NR * LANES) == 0, "panel_tile names four accumulators per row");

// One row against one tile (w: [K][TILE]), widening in registers: VECS independent FMA chains.
template <typename W>
void row_tile(const float* x, int64_t K, const W* w, float* acc) {
  vec a[VECS];
  for (int64_t v = 0; v < VECS; ++v) a[v] = vzero();
  for (int64_t k = 0; k < K; ++k) {
    const vec xk = vbroadcast(x + k);
    const W* wk = w + k * TILE;
    for (int64_t v = 0; v < VECS; ++v) a[v] = vfma(xk, widen(wk + v * LANES), a[v]);
  }
  for (int64_t v = 0; v < VECS; ++v) vstore(acc + v * LANES, a[v]);
}

// R (<= MR) rows against NR vectors of channels of a widened panel (TILE floats per K-step),
// K-steps [0, kn). The running sums live in acc (ldc floats per row, zeroed before the first
// block) between K blocks; storing and reloading a float is exact, so each sum is the same FMA
// chain as row_tile's. Named accumulators, not an array: GCC stores an array of vectors back to
// the stack on every K-step (the bottleneck); `if constexpr` drops the rows past R and the
// vectors past NR.
template <int64_t R>
void panel_tile(const float* x, int64_t ldx, const float* panel, int64_t kn, float* acc, int64_t ldc) {
  vec a0_0, a0_1, a0_2, a0_3, a1_0, a1_1, a1_2, a1_3, a2_0, a2_1, a2_2, a2_3;
  vec a3_0, a3_1, a3_2, a3_3, a4_0, a4_1, a4_2, a4_3, a5_0, a5_1, a5_2, a5_3;
#define FASTTTS_IF(cond, body) \
  if constexpr (cond) {        \
    body                       \
  }
#define FASTTTS_ROW(i, op) FASTTTS_IF(R > i, op(i, 0) op(i, 1) FASTTTS_IF(NR > 2, op(i, 2) op(i, 3)))
#define FASTTTS_ALL(op) FASTTTS_ROW(0, op) FASTTTS_ROW(1, op) FASTTTS_ROW(2, op) FASTTTS_ROW(3, op) FASTTTS_ROW(4, op) FASTTTS_ROW(5, op)
#define FASTTTS_LOAD(i, v) a##i##_##v = vload(acc + i * ldc + v * LANES);
#define FASTTTS_FMA(i, v) a##i##_##v = vfma(vbroadcast(x + i * ldx + k), w##v, a##i##_##v);
#define FASTTTS_STORE(i, v) vstore(acc + i * ldc + v * LANES, a##i##_##v);
  FASTTTS_ALL(FASTTTS_LOAD)
  for (int64_t k = 0; k < kn; ++k) {
    const float* pk = panel + k * TILE;
    const vec w0 = vload(pk), w1 = vload(pk + LANES);
    vec w2 = w0, w3 = w1;
    if constexpr (NR > 2) {
      w2 = vload(pk + 2 * LANES);
      w3 = vload(pk + 3 * LANES);
    }
    FASTTTS_ALL(FASTTTS_FMA)
  }
  FASTTTS_ALL(FASTTTS_STORE)
#undef FASTTTS_STORE
#undef FASTTTS_FMA
#undef FASTTTS_LOAD
#undef FASTTTS_ALL
#undef FASTTTS_ROW
#undef FASTTTS_IF
}

// Rows in near-equal groups of at most MR (8 rows: 4 + 4, not 6 + 2).
void panel_rows(const float* x, int64_t M, int64_t K, const float* panel, int64_t kn, float* acc) {
  const int64_t groups = (M + MR - 1) / MR;
  for (int64_t g = 0, i = 0; g < groups; ++g) {
    const int64_t rows = (M - i) / (groups - g);
    const float* xi = x + i * K;
    float* ai = acc + i * TILE;
    switch (rows) {
      case 6: panel_tile<6>(xi, K, panel, kn, ai, TILE); break;
      case 5: panel_tile<5>(xi, K, panel, kn, ai, TILE); break;
      case 4: panel_tile<4>(xi, K, panel, kn, ai, TILE); break;
      case 3: panel_tile<3>(xi, K, panel, kn, ai, TILE); break;
      case 2: panel_tile<2>(xi, K, panel, kn, ai, TILE); break;
      default: panel_tile<1>(xi, K, panel, kn, ai, TILE); break;
    }
    i += rows;
  }
}

template <typename W>
void rows_tile(const float* x, int64_t M, int64_t K, const W* w, float* acc, float* panel) {
  std::fill(acc, acc + M * TILE, 0.0f);
  for (int64_t k0 = 0; k0 < K; k0 += KBLOCK) {
    const int64_t kn = std::min(KBLOCK, K - k0);
    for (int64_t e = 0; e < kn * TILE; e += LANES) vstore(panel + e, widen(w + k0 * TILE + e));
    for (int64_t c = 0; c < TILE; c += NR * LANES) {
      panel_rows(x + k0, M, K, panel + c, kn, acc + c);
    }
  }
}

template <typename W>
at::Tensor linear(const at::Tensor& x, const W* w, int64_t N, const float* scale) {
  const int64_t M = x.size(0), K = x.size(1), tiles = (N + TILE - 1) / TILE;
  at::Tensor out = at::empty({M, N}, x.options());
  const float* xp = x.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, tiles, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> acc(M * TILE), panel(M > 1 ? KBLOCK * TILE : 0);
    for (int64_t t = t0; t < t1; ++t) {
      if (M == 1) {
        row_tile<W>(xp, K, w + t * TILE * K, acc.data());
      } else {
        rows_tile<W>(xp, M, K, w + t * TILE * K, acc.data(), panel.data());
      }
      const int64_t n = t * TILE, c = std::min(TILE, N - n);
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < c; ++j) op[i * N + n + j] = scale ? acc[i * TILE + j] * scale[n + j] : acc[i * TILE + j];
    }
  });
  return out;
}

int64_t padded(int64_t n) { return (n + TILE - 1) / TILE * TILE; }

void check_input(const at::Tensor& x, const at::Tensor& w) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && x.is_contiguous(), "x must be a contiguous float32 [M, K]");
  TORCH_CHECK(w.dim() == 2 && w.is_contiguous() && w.size(1) == x.size(1), "w must be a packed [N, K] weight with x's K");
  TORCH_CHECK(w.storage().nbytes() - w.storage_offset() * w.element_size() >= padded(w.size(0)) * w.size(1) * w.element_size(),
              "w was not made by pack (its storage holds no padded last tile)");
}

// [N, K] -> a tensor of the same shape whose storage holds ceil(N/64) tiles of [K][64] (zero
// channels pad the last): each K-step of a tile is contiguous, the order row_tile reads.
at::Tensor pack(const at::Tensor& w) {
  TORCH_CHECK(w.dim() == 2, "pack takes an [N, K] weight");
  const int64_t N = w.size(0), K = w.size(1);
  at::Tensor full = at::zeros({padded(N), K}, w.options());
  full.narrow(0, 0, N).copy_(w);
  at::Tensor tiles = full.view({padded(N) / TILE, TILE, K}).transpose(1, 2).contiguous();
  return tiles.view({-1}).narrow(0, 0, N * K).view({N, K});
}

at::Tensor int8_linear(const at::Tensor& x, const at::Tensor& q, const at::Tensor& scale) {
  check_input(x, q);
  TORCH_CHECK(q.scalar_type() == at::kChar, "q must be int8");
  TORCH_CHECK(scale.scalar_type() == at::kFloat && scale.is_contiguous() && scale.numel() == q.size(0), "scale must be a contiguous float32 [N]");
  return linear<int8_t>(x, q.data_ptr<int8_t>(), q.size(0), scale.data_ptr<float>());
}

at::Tensor bf16_linear(const at::Tensor& x, const at::Tensor& w) {
  check_input(x, w);
  TORCH_CHECK(w.scalar_type() == at::kBFloat16, "w must be bfloat16");
  return linear<uint16_t>(x, reinterpret_cast<const uint16_t*>(w.data_ptr<at::BFloat16>()), w.size(0), nullptr);
}

}  // namespace

// TORCH_LIBRARY pastes its first argument: one more macro level expands FASTTTS_LIBRARY first
#define FASTTTS_REGISTER(library) TORCH_LIBRARY(library, m)
FASTTTS_REGISTER(FASTTTS_LIBRARY) {
  m.def("pack(Tensor w) -> Tensor", &pack);
  m.def("int8_linear(Tensor x, Tensor q, Tensor scale) -> Tensor", &int8_linear);
  m.def("bf16_linear(Tensor x, Tensor w) -> Tensor", &bf16_linear);
}

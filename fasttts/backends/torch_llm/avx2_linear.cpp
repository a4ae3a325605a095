// Weight-only linear kernels for x86-64 CPUs with AVX2 and FMA: int8 weights (per-output-channel
// scale) and bfloat16 weights, float32 activations and sums. Built at run time by avx2_linear.py.
//
// Why: decoding one token reads every weight once. PyTorch's own int8 kernel
// (_weight_int8pack_mm) is compute-bound at one row on AVX2 and falls below float32 from 32
// rows; FBGEMM's fp16 linear holds bfloat16 well at one row but reads several weight rows at
// once. Here weights are packed in tiles of 64 output channels, [K][64], so one row reads a layer
// as one sequential stream per thread (a cache line of int8 per K-step) and widens it in
// registers; several rows widen a block of the tile once and run a 6x16 register tile over it.
//
// Batch invariance: every output element is one FMA chain over k = 0..K-1 in increasing order,
// started at zero, then times the channel's scale, whatever the row count. Only how rows and
// channels are grouped into register tiles changes with the row count, never the arithmetic of
// one element, so a request's numbers do not depend on the requests decoded beside it.
#include <immintrin.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

namespace {

constexpr int64_t TILE = 64;         // output channels per packed tile: a K-step of int8 weights is one cache line
constexpr int64_t LANES = 8;         // float32 lanes of a ymm register
constexpr int64_t VECS = TILE / LANES;
constexpr int64_t MR = 6;            // rows per register tile of the many-row path (6 x 2 accumulators)
constexpr int64_t NR = 2;            // ... and vectors of 8 channels
constexpr int64_t KBLOCK = 64;       // K-steps widened at a time: a 16 KB float32 panel, in L1

inline __m256 widen8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
inline __m256 widen8(const uint16_t* p) {  // bfloat16: the top half of a float32
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// One row against one tile (w: [K][TILE]), widening in registers: eight independent FMA chains.
template <typename W>
void row_tile(const float* x, int64_t K, const W* w, float* acc) {
  __m256 a[VECS];
  for (int64_t v = 0; v < VECS; ++v) a[v] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const __m256 xk = _mm256_broadcast_ss(x + k);
    const W* wk = w + k * TILE;
    for (int64_t v = 0; v < VECS; ++v) a[v] = _mm256_fmadd_ps(xk, widen8(wk + v * LANES), a[v]);
  }
  for (int64_t v = 0; v < VECS; ++v) _mm256_storeu_ps(acc + v * LANES, a[v]);
}

// R (<= MR) rows against 16 channels of a widened panel (TILE floats per K-step), K-steps [0, kn).
// The running sums live in acc (ldc floats per row, zeroed before the first block) between K
// blocks; storing and reloading a float is exact, so each sum is the same FMA chain as row_tile's.
// Named accumulators, not an array: GCC stores an array of vectors back to the stack on every
// K-step (12 stores a step, the bottleneck); `if constexpr` drops the rows past R.
template <int64_t R>
void panel_tile(const float* x, int64_t ldx, const float* panel, int64_t kn, float* acc, int64_t ldc) {
  __m256 a00, a01, a10, a11, a20, a21, a30, a31, a40, a41, a50, a51;
#define FASTTTS_ROW(i, body) \
  if constexpr (R > i) {     \
    body                     \
  }
#define FASTTTS_LOAD(i) FASTTTS_ROW(i, a##i##0 = _mm256_loadu_ps(acc + i * ldc); a##i##1 = _mm256_loadu_ps(acc + i * ldc + LANES);)
  FASTTTS_LOAD(0) FASTTTS_LOAD(1) FASTTTS_LOAD(2) FASTTTS_LOAD(3) FASTTTS_LOAD(4) FASTTTS_LOAD(5)
  for (int64_t k = 0; k < kn; ++k) {
    const __m256 w0 = _mm256_loadu_ps(panel + k * TILE), w1 = _mm256_loadu_ps(panel + k * TILE + LANES);
#define FASTTTS_FMA(i)                                       \
  FASTTTS_ROW(i, const __m256 xk = _mm256_broadcast_ss(x + i * ldx + k); \
              a##i##0 = _mm256_fmadd_ps(xk, w0, a##i##0); a##i##1 = _mm256_fmadd_ps(xk, w1, a##i##1);)
    FASTTTS_FMA(0) FASTTTS_FMA(1) FASTTTS_FMA(2) FASTTTS_FMA(3) FASTTTS_FMA(4) FASTTTS_FMA(5)
  }
#define FASTTTS_STORE(i) FASTTTS_ROW(i, _mm256_storeu_ps(acc + i * ldc, a##i##0); _mm256_storeu_ps(acc + i * ldc + LANES, a##i##1);)
  FASTTTS_STORE(0) FASTTTS_STORE(1) FASTTTS_STORE(2) FASTTTS_STORE(3) FASTTTS_STORE(4) FASTTTS_STORE(5)
#undef FASTTTS_STORE
#undef FASTTTS_FMA
#undef FASTTTS_LOAD
#undef FASTTTS_ROW
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
    for (int64_t e = 0; e < kn * TILE; e += LANES) _mm256_storeu_ps(panel + e, widen8(w + k0 * TILE + e));
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

TORCH_LIBRARY(fasttts_avx2, m) {
  m.def("pack(Tensor w) -> Tensor", &pack);
  m.def("int8_linear(Tensor x, Tensor q, Tensor scale) -> Tensor", &int8_linear);
  m.def("bf16_linear(Tensor x, Tensor w) -> Tensor", &bf16_linear);
}

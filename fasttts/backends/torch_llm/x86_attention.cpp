// Decode attention for x86 CPUs: one query token per sequence against that sequence's cached
// keys and values, for the torch backend's eager attention. Why: eager attention at one token
// is a dozen ATen calls per layer (views, two batched matmuls, softmax, copies), 46 us a layer on
// a 2-core EPYC, a third of a decode step's work outside the linears; here it is one call.
//
// Numbers: those of eager attention on a CPU, which computes in float32 whatever the model's
// dtype: scores q.k in float32 times the scale, softmax in float32 (exp(s - max), over the sum),
// the value sum in float32, rounded once to the output dtype. Each sequence attends its own
// `length` keys only (eager masks the others to probability zero, exactly), so a row's result
// depends on its own query and keys, never on the batch beside it. Summation orders are fixed
// here (lanes of D, then the lanes' sum; keys in increasing order), not MKL's.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "x86_simd.h"

namespace {

using namespace fasttts;

constexpr int64_t MAX_HEAD_DIM = 256;

inline vec load(const float* p) { return vload(p); }
inline vec load(const at::BFloat16* p) { return widen(reinterpret_cast<const uint16_t*>(p)); }
inline void put(float* p, float v) { *p = v; }
inline void put(at::BFloat16* p, float v) { *p = at::BFloat16(v); }  // round to nearest even

// One query head (q: D values) against `length` keys and values (rows `ks` / `vs` elements apart).
template <typename T>
void attend(const T* q, const T* k, int64_t ks, const T* v, int64_t vs, int64_t length, int64_t D, float scale, float* p, T* out) {
  float top = -std::numeric_limits<float>::infinity();
  for (int64_t l = 0; l < length; ++l) {
    vec dot = vzero();
    for (int64_t e = 0; e < D; e += LANES) dot = vfma(load(q + e), load(k + l * ks + e), dot);
    p[l] = vsum(dot) * scale;
    top = std::max(top, p[l]);
  }
  float sum = 0.0f;
  for (int64_t l = 0; l < length; ++l) {
    p[l] = std::exp(p[l] - top);
    sum += p[l];
  }
  vec acc[MAX_HEAD_DIM / LANES];
  const int64_t vecs = D / LANES;
  for (int64_t j = 0; j < vecs; ++j) acc[j] = vzero();
  for (int64_t l = 0; l < length; ++l) {
    const float pl = p[l] / sum;
    const vec w = vbroadcast(&pl);
    for (int64_t j = 0; j < vecs; ++j) acc[j] = vfma(w, load(v + l * vs + j * LANES), acc[j]);
  }
  float row[MAX_HEAD_DIM];
  for (int64_t j = 0; j < vecs; ++j) vstore(row + j * LANES, acc[j]);
  for (int64_t e = 0; e < D; ++e) put(out + e, row[e]);
}

template <typename T>
void run(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& values, const int64_t* lengths, float scale, at::Tensor& out) {
  const int64_t B = q.size(0), H = q.size(1), D = q.size(2), Hkv = keys.size(1), rep = H / Hkv, L = keys.size(2);
  const T* qp = q.data_ptr<T>();
  const T* kp = keys.data_ptr<T>();
  const T* vp = values.data_ptr<T>();
  T* op = out.data_ptr<T>();
  at::parallel_for(0, B * Hkv, 1, [&](int64_t i0, int64_t i1) {
    std::vector<float> p(L);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / Hkv, g = i % Hkv;
      const T* k = kp + b * keys.stride(0) + g * keys.stride(1);
      const T* v = vp + b * values.stride(0) + g * values.stride(1);
      for (int64_t h = g * rep; h < (g + 1) * rep; ++h)
        attend<T>(qp + b * q.stride(0) + h * q.stride(1), k, keys.stride(2), v, values.stride(2), lengths[b], D, scale, p.data(), op + (b * H + h) * D);
    }
  });
}

// q [B, H, D], keys and values [B, Hkv, L, D] (any strides but a contiguous last dimension),
// lengths [B] int64 (keys each sequence attends, 1..L) -> [B, H * D] in q's dtype.
at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& values, const at::Tensor& lengths, double scale) {
  TORCH_CHECK(q.dim() == 3 && keys.dim() == 4 && values.sizes() == keys.sizes(), "q must be [B, H, D], keys and values [B, Hkv, L, D]");
  TORCH_CHECK(keys.size(0) == q.size(0) && keys.size(3) == q.size(2) && keys.size(1) > 0 && q.size(1) % keys.size(1) == 0, "q and the keys disagree on B, D or the head grouping");
  TORCH_CHECK(q.scalar_type() == keys.scalar_type() && values.scalar_type() == keys.scalar_type(), "q, keys and values must share a dtype");
  TORCH_CHECK(q.scalar_type() == at::kFloat || q.scalar_type() == at::kBFloat16, "decode_attention takes float32 or bfloat16");
  TORCH_CHECK(q.stride(2) == 1 && keys.stride(3) == 1 && values.stride(3) == 1, "the head dimension must be contiguous");
  TORCH_CHECK(q.size(2) % LANES == 0 && q.size(2) <= MAX_HEAD_DIM, "head dim must be a multiple of ", LANES, " up to ", MAX_HEAD_DIM);
  const at::Tensor lens = lengths.to(at::kLong).contiguous();
  TORCH_CHECK(lens.dim() == 1 && lens.numel() == q.size(0), "lengths must be [B]");
  const int64_t* lp = lens.data_ptr<int64_t>();
  for (int64_t b = 0; b < lens.numel(); ++b) TORCH_CHECK(lp[b] >= 1 && lp[b] <= keys.size(2), "lengths must lie in 1..L");
  at::Tensor out = at::empty({q.size(0), q.size(1) * q.size(2)}, q.options());
  if (q.scalar_type() == at::kFloat) {
    run<float>(q, keys, values, lp, static_cast<float>(scale), out);
  } else {
    run<at::BFloat16>(q, keys, values, lp, static_cast<float>(scale), out);
  }
  return out;
}

}  // namespace

// TORCH_LIBRARY_FRAGMENT pastes its first argument: one more macro level expands FASTTTS_LIBRARY
#define FASTTTS_REGISTER_MORE(library) TORCH_LIBRARY_FRAGMENT(library, m)
FASTTTS_REGISTER_MORE(FASTTTS_LIBRARY) {
  m.def("decode_attention(Tensor q, Tensor keys, Tensor values, Tensor lengths, float scale) -> Tensor", &decode_attention);
}

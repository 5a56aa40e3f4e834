// Multi-head self-attention on `at::scaled_dot_product_attention`, as
// transformers' "sdpa" attention runs it.
//
// - Grouped-query attention: `num_kv_heads` may divide `num_heads`. Like
//   `transformers.integrations.sdpa_attention`, modules that HF gives a
//   `num_key_value_groups` (every decoder attention) pass `enable_gqa` when
//   no mask is given and repeat k/v otherwise; encoder attentions (CLIP,
//   SigLIP) never do either.
// - Masks: `AttentionMask::Causal()` uses SDPA's own causal flag (what HF does
//   when the 2D attention mask is all ones); `AttentionMask::Explicit(m)`
//   takes a boolean (true = attend) or additive float mask broadcastable to
//   [batch, heads, queries, keys], which is how sliding windows and
//   bidirectional image blocks are expressed.
// - Options: q/k/v biases (Qwen2), an output bias (CLIP), QK-norm over each
//   head or over the whole projection (Gemma 3 / InternViT), the softmax
//   scale (head_dim^-0.5 unless the config says otherwise), rotary `CosSin`
//   applied to q and k after QK-norm.
// - The extraction engine's call, `Extended` (see `ExtendedCall`): outputs
//   for chosen query rows only, keys/values of earlier positions computed
//   once and shared by a batch (a prompt's text prefix), this call's own
//   keys/values handed back, and q/k/v as one packed matmul. The plain
//   `operator()` stays the op-for-op transformers computation.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/scaled_dot_product_attention.h>
#include <ATen/ops/zeros.h>

#include "spatialid/nn/linear.h"
#include "spatialid/nn/norm.h"
#include "spatialid/nn/rotary.h"
#include "spatialid/nn/weights.h"

namespace spatialid::nn {

struct AttentionMask {
  bool causal = false;
  at::Tensor mask;  // bool (true = attend) or additive, broadcastable to [B, H, Q, K]

  static AttentionMask None() { return {}; }
  static AttentionMask Causal() { return {true, at::Tensor()}; }
  static AttentionMask Explicit(at::Tensor m) { return {false, std::move(m)}; }
};

// (batch, kv_heads, seq, d) -> (batch, kv_heads * groups, seq, d), each kv
// head repeated `groups` times in a row (HF repeat_kv).
inline at::Tensor RepeatKv(const at::Tensor& x, int64_t groups) {
  if (groups == 1) return x;
  const int64_t b = x.size(0), h = x.size(1), s = x.size(2), d = x.size(3);
  return x.unsqueeze(2).expand({b, h, groups, s, d}).reshape({b, h * groups, s, d});
}

// softmax(q k^T * scale + mask) v for q [B, H, Q, D], k/v [B, Hkv, K, D].
// `hf_kv_groups`: the HF module defines num_key_value_groups (decoders).
inline at::Tensor Attend(const at::Tensor& q, at::Tensor k, at::Tensor v,
                         const AttentionMask& mask, double scale, bool hf_kv_groups) {
  const int64_t groups = q.size(1) / k.size(1);
  TORCH_CHECK(groups * k.size(1) == q.size(1), "attention: ", q.size(1),
              " query heads are not a multiple of ", k.size(1), " key/value heads");
  TORCH_CHECK(!(mask.causal && mask.mask.defined()),
              "attention: give either the causal flag or an explicit mask, not both");
  bool enable_gqa = false;
  if (hf_kv_groups) {
    if (mask.mask.defined()) {
      k = RepeatKv(k, groups);
      v = RepeatKv(v, groups);
    } else {
      enable_gqa = true;
    }
  } else {
    TORCH_CHECK(groups == 1, "attention: grouped key/value heads need hf_kv_groups");
  }
  // SDPA's causal flag is only meaningful for more than one query (HF: "not
  // in decoding phase").
  const bool is_causal = mask.causal && q.size(2) > 1;
  std::optional<at::Tensor> attn_mask;
  if (mask.mask.defined()) attn_mask = mask.mask;
  return at::scaled_dot_product_attention(q, k, v, attn_mask, /*dropout_p=*/0.0, is_causal,
                                          scale, enable_gqa);
}

// Keys and values of positions before a call's own, after rotary and
// QK-norm, as `Extended` prepends them: [1 or batch, kv_heads, P, head_dim].
struct PastKv {
  at::Tensor k;
  at::Tensor v;

  int64_t length() const { return k.defined() ? k.size(2) : 0; }
};

// What an engine call computes beyond the plain one. Every field is
// optional; a default ExtendedCall is the plain computation (up to matmul
// rounding when `packed`).
struct ExtendedCall {
  // Positions 0..P-1, shared by the whole batch; x holds positions P.. .
  // With the causal mask, or an explicit one over all P + S keys.
  const PastKv* past = nullptr;
  // int64 [R] rows of x whose outputs are wanted (ascending); undefined: all.
  // Keys and values still come from every row.
  at::Tensor query_rows;
  // Receives this call's own keys and values (to become a later `past`).
  PastKv* present = nullptr;
  // Use packed q/k/v (and gate/up) weights where a block has them.
  bool packed = false;

  // The plain call: blocks then run their op-for-op transformers path.
  bool IsPlain() const {
    return past == nullptr && !query_rows.defined() && present == nullptr && !packed;
  }
};

// The boolean mask (true = attend) [R, P + S] of causal attention for query
// rows `rows` (int64, relative to x) of a call whose x starts at position P.
inline at::Tensor CausalRowsMask(const at::Tensor& rows, int64_t past, int64_t keys) {
  const at::Tensor key_pos =
      at::arange(keys, at::TensorOptions().dtype(at::kLong).device(rows.device()));
  return key_pos.unsqueeze(0) <= (rows + past).unsqueeze(1);
}

// Where QK-norm normalises: each head's vector (Gemma 3, Qwen3) or the whole
// projected query/key before it is split into heads (InternViT).
enum class QkNormScope { kPerHead, kWholeProjection };

struct AttentionShape {
  int64_t hidden_size = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;  // == num_heads without GQA
  int64_t head_dim = 0;      // usually hidden_size / num_heads
  bool qkv_bias = false;
  bool o_bias = false;
  std::optional<double> scale;  // softmax scale; head_dim^-0.5 when unset
  bool hf_kv_groups = true;     // false for encoder attentions (CLIP, SigLIP)
  std::string o_proj_name = "o_proj";  // CLIP calls it "out_proj"
  std::optional<QkNormScope> qk_norm;  // QK-norm on (its weights: q_norm / k_norm)
  double qk_norm_eps = 1e-6;
};

// `QkNorm` is the norm type of q_norm/k_norm when the shape turns it on.
template <class QkNorm = RmsNorm<>>
struct SelfAttention {
  Linear q_proj, k_proj, v_proj, o_proj;
  std::optional<QkNorm> q_norm, k_norm;
  AttentionShape shape;
  // q, k and v weights stacked [q_out + 2 kv_out, hidden] (and biases), set
  // by PackProjections; q/k/v_proj then view into it, so the plain call is
  // unchanged and no memory is added.
  Linear qkv_packed;

  template <WeightLoader L>
  static SelfAttention Load(L& loader, const std::string& prefix, const AttentionShape& s) {
    SelfAttention a;
    a.shape = s;
    const int64_t q_out = s.num_heads * s.head_dim;
    const int64_t kv_out = s.num_kv_heads * s.head_dim;
    a.q_proj = Linear::Load(loader, Join(prefix, "q_proj"), s.hidden_size, q_out, s.qkv_bias);
    a.k_proj = Linear::Load(loader, Join(prefix, "k_proj"), s.hidden_size, kv_out, s.qkv_bias);
    a.v_proj = Linear::Load(loader, Join(prefix, "v_proj"), s.hidden_size, kv_out, s.qkv_bias);
    a.o_proj = Linear::Load(loader, Join(prefix, s.o_proj_name), q_out, s.hidden_size, s.o_bias);
    if (s.qk_norm) {
      const bool per_head = *s.qk_norm == QkNormScope::kPerHead;
      a.q_norm = QkNorm::Load(loader, Join(prefix, "q_norm"), per_head ? s.head_dim : q_out,
                              s.qk_norm_eps);
      a.k_norm = QkNorm::Load(loader, Join(prefix, "k_norm"), per_head ? s.head_dim : kv_out,
                              s.qk_norm_eps);
    }
    return a;
  }

  double scale() const {
    return shape.scale ? *shape.scale : 1.0 / std::sqrt(static_cast<double>(shape.head_dim));
  }

  // Stacks q/k/v_proj into `qkv_packed` (one matmul instead of three in
  // `Extended`). Idempotent.
  void PackProjections() {
    if (qkv_packed.weight.defined()) return;
    const int64_t q_out = q_proj.out_features(), kv_out = k_proj.out_features();
    qkv_packed.weight = at::cat({q_proj.weight, k_proj.weight, v_proj.weight}, 0);
    q_proj.weight = qkv_packed.weight.narrow(0, 0, q_out);
    k_proj.weight = qkv_packed.weight.narrow(0, q_out, kv_out);
    v_proj.weight = qkv_packed.weight.narrow(0, q_out + kv_out, kv_out);
    if (q_proj.bias.defined()) {
      qkv_packed.bias = at::cat({q_proj.bias, k_proj.bias, v_proj.bias}, 0);
      q_proj.bias = qkv_packed.bias.narrow(0, 0, q_out);
      k_proj.bias = qkv_packed.bias.narrow(0, q_out, kv_out);
      v_proj.bias = qkv_packed.bias.narrow(0, q_out + kv_out, kv_out);
    }
  }

  // x [B, S, hidden] -> [B, S, hidden]. `rotary` (or nullptr) is cos/sin for
  // these S positions.
  at::Tensor operator()(const at::Tensor& x, const CosSin* rotary,
                        const AttentionMask& mask) const {
    const int64_t b = x.size(0), s = x.size(1);
    at::Tensor q = q_proj(x), k = k_proj(x), v = v_proj(x);
    const bool whole = shape.qk_norm && *shape.qk_norm == QkNormScope::kWholeProjection;
    if (whole) {
      q = (*q_norm)(q);
      k = (*k_norm)(k);
    }
    q = q.view({b, s, -1, shape.head_dim}).transpose(1, 2);
    k = k.view({b, s, -1, shape.head_dim}).transpose(1, 2);
    v = v.view({b, s, -1, shape.head_dim}).transpose(1, 2);
    if (shape.qk_norm && !whole) {
      q = (*q_norm)(q);
      k = (*k_norm)(k);
    }
    if (rotary != nullptr) {
      q = ApplyRotary(q, *rotary);
      k = ApplyRotary(k, *rotary);
    }
    const at::Tensor out = Attend(q, k, v, mask, scale(), shape.hf_kv_groups);
    return o_proj(out.transpose(1, 2).reshape({b, s, -1}));
  }

  // The engine's call (see ExtendedCall): x [B, S, hidden] at positions
  // P..P+S-1, `rotary` cos/sin for those S positions -> [B, R, hidden] for
  // the R query rows (all S when none are given).
  at::Tensor Extended(const at::Tensor& x, const CosSin* rotary, const AttentionMask& mask,
                      const ExtendedCall& call) const {
    const int64_t b = x.size(0), s = x.size(1);
    const int64_t past = call.past != nullptr ? call.past->length() : 0;
    const bool rows = call.query_rows.defined();
    // A shared prefix is exact under causal attention, or under an explicit
    // mask whose key columns include the prefix (Gemma 3's masks).
    TORCH_CHECK(past == 0 || mask.causal || (mask.mask.defined() && mask.mask.size(-1) == past + s),
                "attention: past keys need the causal mask or an explicit mask over ", past + s,
                " keys");
    at::Tensor q, k, v;
    Project(x, call, &q, &k, &v);
    if (rotary != nullptr) {
      q = ApplyRotary(q, rows ? CosSin{rotary->cos.index_select(1, call.query_rows),
                                       rotary->sin.index_select(1, call.query_rows)}
                              : *rotary);
      k = ApplyRotary(k, *rotary);
    }
    if (call.present != nullptr) *call.present = PastKv{k, v};
    if (past > 0) {
      k = at::cat({call.past->k.expand({b, -1, -1, -1}), k}, 2);
      v = at::cat({call.past->v.expand({b, -1, -1, -1}), v}, 2);
    }
    AttentionMask m = mask;
    int64_t dropped = 0;
    if (rows && mask.causal) {
      m = AttentionMask::Explicit(CausalRowsMask(call.query_rows, past, past + s));
    } else if (rows && mask.mask.defined() && mask.mask.size(-2) != 1) {
      m = AttentionMask::Explicit(mask.mask.index_select(-2, call.query_rows));
    } else if (past > 0 && mask.causal) {
      // SDPA's causal flag aligns queries with the first keys; give the
      // past positions placeholder queries and drop their outputs.
      q = at::cat({at::zeros({b, q.size(1), past, q.size(3)}, q.options()), q}, 2);
      dropped = past;
    }
    at::Tensor out = Attend(q, k, v, m, scale(), shape.hf_kv_groups);
    if (dropped > 0) out = out.slice(2, dropped);
    return o_proj(out.transpose(1, 2).reshape({b, out.size(2), -1}));
  }

 private:
  // q [B, H, R, D] of the query rows, k/v [B, Hkv, S, D] of every row,
  // QK-normed, before rotary.
  void Project(const at::Tensor& x, const ExtendedCall& call, at::Tensor* q, at::Tensor* k,
               at::Tensor* v) const {
    const int64_t b = x.size(0), s = x.size(1);
    const int64_t q_out = q_proj.out_features(), kv_out = k_proj.out_features();
    const bool packed = call.packed && qkv_packed.weight.defined();
    const bool rows = call.query_rows.defined();
    if (packed && !rows) {
      const at::Tensor qkv = qkv_packed(x);
      *q = qkv.narrow(-1, 0, q_out);
      *k = qkv.narrow(-1, q_out, kv_out);
      *v = qkv.narrow(-1, q_out + kv_out, kv_out);
    } else {
      const at::Tensor xq = rows ? x.index_select(1, call.query_rows) : x;
      *q = q_proj(xq);
      if (packed) {
        const at::Tensor w = qkv_packed.weight.narrow(0, q_out, 2 * kv_out);
        const at::Tensor kv = qkv_packed.bias.defined()
                                  ? at::linear(x, w, qkv_packed.bias.narrow(0, q_out, 2 * kv_out))
                                  : at::linear(x, w);
        *k = kv.narrow(-1, 0, kv_out);
        *v = kv.narrow(-1, kv_out, kv_out);
      } else {
        *k = k_proj(x);
        *v = v_proj(x);
      }
    }
    const bool whole = shape.qk_norm && *shape.qk_norm == QkNormScope::kWholeProjection;
    if (whole) {
      *q = (*q_norm)(*q);
      *k = (*k_norm)(*k);
    }
    *q = q->view({b, q->size(1), -1, shape.head_dim}).transpose(1, 2);
    *k = k->view({b, s, -1, shape.head_dim}).transpose(1, 2);
    *v = v->view({b, s, -1, shape.head_dim}).transpose(1, 2);
    if (shape.qk_norm && !whole) {
      *q = (*q_norm)(*q);
      *k = (*k_norm)(*k);
    }
  }
};

}  // namespace spatialid::nn

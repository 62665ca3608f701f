// Kernel entry of reshape_and_cache (vector only): writes each token's K and V rows into the paged caches at its
// slot, skipping negative slots (padding tokens). A slot past the cache is skipped and flagged in the workspace
// (the host validated the slots first; the kernel still never writes outside the cache). Rows go GM -> UB -> GM
// through a TQueBind<VECIN, VECOUT>, whose events order the MTE2 copy in before the MTE3 copy out, and the next
// copy into a buffer after the previous copy out of it.
#include "../common/copy_tiling.h"
#include "../common/kernel_entry.h"
#include "../paged_attention/paged_attention_tiling.h"
#include "kernel_operator.h"
#include "reshape_and_cache_tiling.h"

namespace {

class ReshapeAndCacheKernel {
 public:
  // key [num_tokens, kv_heads, d], value [num_tokens, kv_heads, dv], caches [num_blocks, block_size, kv_heads, d(v)],
  // slot_mapping int32/int64 [num_tokens]; rows are moved as bytes.
  __aicore__ inline void Init(GM_ADDR key, GM_ADDR value, GM_ADDR key_cache, GM_ADDR value_cache, GM_ADDR slot_mapping,
                              GM_ADDR workspace, const ReshapeAndCacheTiling* tiling, AscendC::TPipe* pipe) {
    t_ = tiling;
    k_row_ = t_->num_kv_heads * t_->head_dim * t_->elem_bytes;
    v_row_ = t_->num_kv_heads * t_->head_dim_v * t_->elem_bytes;
    const uint64_t slots = uint64_t(t_->num_blocks) * t_->block_size;
    key_.SetGlobalBuffer(reinterpret_cast<__gm__ uint8_t*>(key), uint64_t(t_->num_tokens) * k_row_);
    value_.SetGlobalBuffer(reinterpret_cast<__gm__ uint8_t*>(value), uint64_t(t_->num_tokens) * v_row_);
    key_cache_.SetGlobalBuffer(reinterpret_cast<__gm__ uint8_t*>(key_cache), slots * k_row_);
    value_cache_.SetGlobalBuffer(reinterpret_cast<__gm__ uint8_t*>(value_cache), slots * v_row_);
    if (t_->slot_int64) {
      slot64_.SetGlobalBuffer(reinterpret_cast<__gm__ int64_t*>(slot_mapping), t_->num_tokens);
    } else {
      slot32_.SetGlobalBuffer(reinterpret_cast<__gm__ int32_t*>(slot_mapping), t_->num_tokens);
    }
    // One 64-byte data-cache line per worker, as in paged_attention.
    error_.SetGlobalBuffer(reinterpret_cast<__gm__ uint32_t*>(AscendC::GetUserWorkspace(workspace) +
                                                              AscendC::GetBlockIdx() * kPagedErrorSlotBytes),
                           kPagedErrorSlotBytes / 4);
    pipe->InitBuffer(que_, 2, k_row_ > v_row_ ? k_row_ : v_row_);  // double buffered
  }

  __aicore__ inline void Process() {
    const uint64_t w = uint64_t(AscendC::GetBlockIdx()), workers = t_->used_workers;
    if (w >= workers) return;
    const uint64_t slots = uint64_t(t_->num_blocks) * t_->block_size;
    for (uint64_t token = t_->num_tokens * w / workers; token < t_->num_tokens * (w + 1) / workers; ++token) {
      const int64_t slot = t_->slot_int64 ? slot64_.GetValue(token) : slot32_.GetValue(token);
      if (slot < 0) continue;  // padding token
      if (uint64_t(slot) >= slots) {
        error_.SetValue(0, 1);  // the host reads it after the launch: write the line back
        AscendC::DataCacheCleanAndInvalid<uint32_t, AscendC::CacheLine::SINGLE_CACHE_LINE,
                                          AscendC::DcciDst::CACHELINE_OUT>(error_);
        continue;
      }
      CopyRow(key_[token * k_row_], key_cache_[uint64_t(slot) * k_row_], k_row_);
      CopyRow(value_[token * v_row_], value_cache_[uint64_t(slot) * v_row_], v_row_);
    }
  }

 private:
  __aicore__ inline void CopyRow(const AscendC::GlobalTensor<uint8_t>& src, const AscendC::GlobalTensor<uint8_t>& dst,
                                 uint32_t bytes) {
    AscendC::LocalTensor<uint8_t> row = que_.AllocTensor<uint8_t>();
    AscendC::DataCopyPad(row, src, AscendC::DataCopyExtParams(1, bytes, 0, 0, 0),
                         AscendC::DataCopyPadExtParams<uint8_t>(false, 0, 0, 0));
    que_.EnQue(row);
    row = que_.DeQue<uint8_t>();
    AscendC::DataCopyPad(dst, row, AscendC::DataCopyExtParams(1, bytes, 0, 0, 0));
    que_.FreeTensor(row);
  }

  const ReshapeAndCacheTiling* t_ = nullptr;
  uint32_t k_row_ = 0, v_row_ = 0;
  AscendC::GlobalTensor<uint8_t> key_, value_, key_cache_, value_cache_;
  AscendC::GlobalTensor<int32_t> slot32_;
  AscendC::GlobalTensor<int64_t> slot64_;
  AscendC::GlobalTensor<uint32_t> error_;
  AscendC::TQueBind<AscendC::TPosition::VECIN, AscendC::TPosition::VECOUT, 1> que_;
};

}  // namespace

ASCEND_ATTN_VECTOR_KERNEL void reshape_and_cache(GM_ADDR key, GM_ADDR value, GM_ADDR key_cache, GM_ADDR value_cache,
                                                 GM_ADDR slot_mapping, GM_ADDR workspace, GM_ADDR tiling) {
  KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_AIV_ONLY);
  ReshapeAndCacheTiling t;
  ascend_attn_kernel::CopyTiling(&t, tiling);
  AscendC::TPipe pipe;
  ReshapeAndCacheKernel op;
  op.Init(key, value, key_cache, value_cache, slot_mapping, workspace, &t, &pipe);
  op.Process();
}

// Runs the CPU attention backward over a batch of sequences on the torch thread pool: shared by
// flash_attention_backward and flash_attention_varlen_backward (which differ only in how BackwardParams addresses
// their tensors).
#pragma once
#include <vector>

#include "cpu/flash_backward_kernel.h"

namespace ascend_attn::cpu {

// D = rowsum(dout * out) into p.delta's slots, then one work item per (sequence, kv head, tile of keys), run
// largest-first from a shared counter. Each item writes its keys' dK and dV; dQ is accumulated in fp32 into `dq_acc`
// (zeroed by the caller; row r of sequence s, head h at dq_acc + (seqs[s].dq_row + r) * dq_row_stride + h * head_dim),
// the contributions to each (q head, q tile) added in kv-tile order. The result does not depend on the thread count
// or on timing: every gradient is bit-identical run to run. Extra memory: the per-thread scratch and one counter per
// (q head, q tile).
void run_attention_backward(BackwardParams p, const std::vector<BackwardSeq>& seqs, float* delta, float* dq_acc,
                            int64_t dq_row_stride);

}  // namespace ascend_attn::cpu

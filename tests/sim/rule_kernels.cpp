// Purpose-built kernels for the simulator's unit tests: each breaks (or exercises) one hardware rule.
#include <torch/extension.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kernel_operator.h"
#include "lib/matmul_intf.h"

using namespace AscendC;
namespace py = pybind11;

namespace {

// The GM buffers a test passes: fp32 unless the kernel reinterprets them.
struct Bufs {
  std::vector<uint8_t*> p;
  float* f(size_t i) const { return reinterpret_cast<float*>(p.at(i)); }
  half* h(size_t i) const { return reinterpret_cast<half*>(p.at(i)); }
};

// ---- capacities, alignment, copy rules (one core) ----

void ub_capacity(const Bufs&) {
  TPipe pipe;
  TBuf<TPosition::VECCALC> a, b;
  pipe.InitBuffer(a, 150 * 1024);
  pipe.InitBuffer(b, 40 * 1024);  // 190 KB > usable UB
}

void l1_capacity(const Bufs&) {
  if ASCEND_IS_AIV {
    return;
  }
  TPipe pipe;
  TBuf<TPosition::A1> l1;
  pipe.InitBuffer(l1, 600 * 1024);
}

// Registers an fp16 x fp16 -> fp32 Matmul with the tiling a rule kernel filled: REGIST_MATMUL_OBJ runs the tiling
// checks.
void register_matmul(const TCubeTiling& t) {
  using T = MatmulType<TPosition::GM, CubeFormat::ND, half>;
  using C = MatmulType<TPosition::GM, CubeFormat::ND, float>;
  Matmul<T, T, C> mm;
  TPipe pipe;
  REGIST_MATMUL_OBJ(&pipe, GetSysWorkSpacePtr(), mm, &t);
}

void matmul_l1(const Bufs&) {
  TCubeTiling t;
  t.usedCoreNum = 1, t.M = t.N = t.Ka = t.Kb = 128, t.singleCoreM = t.singleCoreN = t.singleCoreK = 128;
  t.baseM = 128, t.baseN = 128, t.baseK = 64;
  t.depthA1 = t.depthB1 = 16;  // 16 base blocks each: 512 KB of L1
  t.stepM = t.stepN = 1, t.stepKa = t.stepKb = 8, t.dbL0A = t.dbL0B = t.dbL0C = 1;
  register_matmul(t);
}

void matmul_depth(const Bufs&) {
  TCubeTiling t;
  t.usedCoreNum = 1, t.M = t.N = t.Ka = t.Kb = 64, t.singleCoreM = t.singleCoreN = t.singleCoreK = 64;
  t.baseM = t.baseN = t.baseK = 64;
  t.depthA1 = 3, t.depthB1 = 2;  // 3 is not stepM x stepKa x (1 or 2)
  t.stepM = t.stepN = t.stepKa = t.stepKb = 1, t.dbL0A = t.dbL0B = t.dbL0C = 2;
  register_matmul(t);
}

void matmul_l0c(const Bufs&) {
  TCubeTiling t;
  t.usedCoreNum = 1, t.M = t.N = t.Ka = t.Kb = 128, t.singleCoreM = t.singleCoreN = t.singleCoreK = 128;
  t.baseM = t.baseN = 128, t.baseK = 64;
  t.depthA1 = t.depthB1 = 2;
  t.stepM = t.stepN = t.stepKa = t.stepKb = 1, t.dbL0A = t.dbL0B = 2;
  t.dbL0C = 2;  // 128 x 128 fp32 twice is exactly L0C's 128 KB: the rule is strictly less
  register_matmul(t);
}

void unaligned(const Bufs&) {
  TPipe pipe;
  TBuf<TPosition::VECCALC> buf;
  pipe.InitBuffer(buf, 1024);
  LocalTensor<float> x = buf.Get<float>();
  Adds(x[3], x[3], 1.0f, 16);
}

void copy_length(const Bufs& b) {
  TPipe pipe;
  TBuf<TPosition::VECCALC> buf;
  pipe.InitBuffer(buf, 1024);
  GlobalTensor<float> g;
  g.SetGlobalBuffer(b.f(0), 64);
  DataCopy(buf.Get<float>(), g, 5);  // 20 bytes: not whole 32-byte blocks
}

void repeat_limit(const Bufs&) {
  TPipe pipe;
  TBuf<TPosition::VECCALC> buf;
  pipe.InitBuffer(buf, 160 * 1024);
  LocalTensor<float> x = buf.Get<float>();
  Mul(x, x, x, 64, 300, BinaryRepeatParams());
}

void gm_out_of_bounds(const Bufs& b) {
  TPipe pipe;
  TBuf<TPosition::VECCALC> buf;
  pipe.InitBuffer(buf, 1024);
  GlobalTensor<float> g;
  g.SetGlobalBuffer(b.f(0), 64);
  LocalTensor<float> x = buf.Get<float>();
  Duplicate(x, 0.0f, 16);
  const TEventID id = GetTPipePtr()->FetchEventID(HardEvent::V_MTE3);
  SetFlag<HardEvent::V_MTE3>(id);
  WaitFlag<HardEvent::V_MTE3>(id);
  DataCopy(g[56], x, 16);  // elements 56..71 of a 64-element tensor
}

void gm_outside_buffers(const Bufs& b) {
  GlobalTensor<float> g;
  g.SetGlobalBuffer(b.f(0) + 32, 64);  // the host passed 64 elements
}

// ---- flags and queues ----

void unmatched_set_flag(const Bufs&) { SetFlag<HardEvent::MTE2_V>(0); }

void wait_without_set(const Bufs&) { WaitFlag<HardEvent::V_MTE3>(1); }

void set_flag_twice(const Bufs&) {
  SetFlag<HardEvent::MTE2_V>(1);
  SetFlag<HardEvent::MTE2_V>(1);
}

void reserved_event_id(const Bufs&) {
  SetFlag<HardEvent::MTE2_V>(7);
  WaitFlag<HardEvent::MTE2_V>(7);
}

void cube_event_on_aiv(const Bufs&) { SetFlag<HardEvent::M_MTE1>(0); }

void pipe_barrier_s(const Bufs&) { PipeBarrier<PIPE_S>(); }

// With a TPipe, a hard-coded id bypasses the pool the TQue operations draw from (issue finding 6).
void hardcoded_event_id(const Bufs&) {
  TPipe pipe;
  SetFlag<HardEvent::V_MTE3>(0);
  WaitFlag<HardEvent::V_MTE3>(0);
}

// FetchEventID does not hold its id: an EnQue in between takes the same one.
void fetched_id_collides(const Bufs&) {
  TPipe pipe;
  TQue<TPosition::VECOUT, 1> que;
  pipe.InitBuffer(que, 1, 256);
  const TEventID id = GetTPipePtr()->FetchEventID(HardEvent::V_MTE3);
  SetFlag<HardEvent::V_MTE3>(id);
  LocalTensor<float> y = que.AllocTensor<float>();
  Duplicate(y, 1.0f, 64);
  que.EnQue(y);
  y = que.DeQue<float>();
  que.FreeTensor(y);
  WaitFlag<HardEvent::V_MTE3>(id);
}

void enque_without_deque(const Bufs&) {
  TPipe pipe;
  TQue<TPosition::VECIN, 1> que;
  pipe.InitBuffer(que, 1, 256);
  LocalTensor<float> t = que.AllocTensor<float>();
  que.EnQue(t);
}

void alloc_without_free(const Bufs&) {
  TPipe pipe;
  TQue<TPosition::VECOUT, 1> que;
  pipe.InitBuffer(que, 2, 256);
  LocalTensor<float> t = que.AllocTensor<float>();
  que.EnQue(t);
  t = que.DeQue<float>();
}

void use_after_free(const Bufs&) {
  TPipe pipe;
  TQue<TPosition::VECIN, 1> que;
  pipe.InitBuffer(que, 1, 256);
  LocalTensor<float> x = que.AllocTensor<float>();
  que.FreeTensor(x);
  Duplicate(x, 1.0f, 64);
}

void enque_freed(const Bufs&) {
  TPipe pipe;
  TQue<TPosition::VECOUT, 1> que;
  pipe.InitBuffer(que, 1, 256);
  LocalTensor<float> x = que.AllocTensor<float>();
  que.FreeTensor(x);
  que.EnQue(x);
}

// ---- races between the pipes of one core ----

// GM -> UB through a VECIN queue and straight back out: EnQue/DeQue order MTE2 -> V only (issue finding 4).
void vecin_copy_through(const Bufs& b) {
  GlobalTensor<float> g;
  g.SetGlobalBuffer(b.f(0), 128);
  TPipe pipe;
  TQue<TPosition::VECIN, 1> que;
  pipe.InitBuffer(que, 1, 256);
  LocalTensor<float> x = que.AllocTensor<float>();
  DataCopy(x, g, 64);
  que.EnQue(x);
  x = que.DeQue<float>();
  DataCopy(g[64], x, 64);
  que.FreeTensor(x);
}

// The same through TQueBind<VECIN, VECOUT>, twice through one buffer: ordered both ways. gm[64:128] = gm[0:64],
// then gm[0:64] = gm[64:128].
void bind_copy_through(const Bufs& b) {
  GlobalTensor<float> g;
  g.SetGlobalBuffer(b.f(0), 128);
  TPipe pipe;
  TQueBind<TPosition::VECIN, TPosition::VECOUT, 1> que;
  pipe.InitBuffer(que, 1, 256);
  for (int i = 0; i < 2; ++i) {
    LocalTensor<float> x = que.AllocTensor<float>();
    DataCopy(x, g[64 * i], 64);
    que.EnQue(x);
    x = que.DeQue<float>();
    DataCopy(g[64 * (1 - i)], x, 64);
    que.FreeTensor(x);
  }
}

// A TBuf written by V and copied out by MTE3 with no flag between.
void tbuf_no_flag(const Bufs& b) {
  GlobalTensor<float> g;
  g.SetGlobalBuffer(b.f(0), 64);
  TPipe pipe;
  TBuf<TPosition::VECCALC> buf;
  pipe.InitBuffer(buf, 256);
  LocalTensor<float> x = buf.Get<float>();
  Duplicate(x, 1.0f, 64);
  DataCopy(g, x, 64);
}

// V -> MTE3 ordered, but the next vector write of the buffer is not ordered after the copy out (issue finding 5).
// With `reuse_flag`, it is, and gm ends as 1.
template <bool reuse_flag>
void tbuf_reuse(const Bufs& b) {
  GlobalTensor<float> g;
  g.SetGlobalBuffer(b.f(0), 64);
  TPipe pipe;
  TBuf<TPosition::VECCALC> buf;
  pipe.InitBuffer(buf, 256);
  LocalTensor<float> x = buf.Get<float>();
  Duplicate(x, 1.0f, 64);
  const TEventID v_mte3 = GetTPipePtr()->FetchEventID(HardEvent::V_MTE3);
  SetFlag<HardEvent::V_MTE3>(v_mte3);
  WaitFlag<HardEvent::V_MTE3>(v_mte3);
  DataCopy(g, x, 64);
  if (reuse_flag) {
    const TEventID mte3_v = GetTPipePtr()->FetchEventID(HardEvent::MTE3_V);
    SetFlag<HardEvent::MTE3_V>(mte3_v);
    WaitFlag<HardEvent::MTE3_V>(mte3_v);
  }
  Duplicate(x, 2.0f, 64);
}

// Two DMA copies into one UB range on MTE2: the pipe needs a PipeBarrier between them (PipeBarrier(ISASI).md).
template <bool barrier>
void mte2_overlap(const Bufs& b) {
  GlobalTensor<float> g;
  g.SetGlobalBuffer(b.f(0), 128);
  TPipe pipe;
  TQue<TPosition::VECIN, 1> que;
  pipe.InitBuffer(que, 1, 256);
  LocalTensor<float> x = que.AllocTensor<float>();
  DataCopy(x, g, 64);
  if (barrier) PipeBarrier<PIPE_MTE2>();
  DataCopy(x, g[64], 64);
  que.EnQue(x);
  x = que.DeQue<float>();
  que.FreeTensor(x);
}

// The scalar unit reads a vector result: the compiler's auto-sync orders it (no flag needed).
void scalar_reads_vector(const Bufs& b) {
  GlobalTensor<float> g;
  g.SetGlobalBuffer(b.f(0), 64);
  TPipe pipe;
  TBuf<TPosition::VECCALC> buf;
  pipe.InitBuffer(buf, 256);
  LocalTensor<float> x = buf.Get<float>();
  Duplicate(x, 3.0f, 64);
  Adds(x, x, 1.0f, 64);
  x.SetValue(1, x.GetValue(0) * 2.0f);
  g.SetValue(0, x.GetValue(1));
  DataCacheCleanAndInvalid<float, CacheLine::SINGLE_CACHE_LINE, DcciDst::CACHELINE_OUT>(g);
}

// ---- the scalar data cache and other cores (vector-only mix launch, 2 cores) ----

// Core 0 writes gm[0] with SetValue; after SyncAll core 1 copies it in by DMA. Without the clean-and-invalidate the
// value is still in core 0's data cache (issue finding 3); with it, core 1 copies 5 back to gm[32].
template <bool flush>
void setvalue_then_dma(const Bufs& b) {
  GlobalTensor<float> g;
  g.SetGlobalBuffer(b.f(0), 64);
  TPipe pipe;
  TQueBind<TPosition::VECIN, TPosition::VECOUT, 1> que;
  pipe.InitBuffer(que, 1, 256);
  if (GetBlockIdx() == 0) {
    g.SetValue(0, 5.0f);
    if (flush) DataCacheCleanAndInvalid<float, CacheLine::SINGLE_CACHE_LINE, DcciDst::CACHELINE_OUT>(g);
  }
  SyncAll();
  if (GetBlockIdx() == 1) {
    LocalTensor<float> x = que.AllocTensor<float>();
    DataCopy(x, g, 8);
    que.EnQue(x);
    x = que.DeQue<float>();
    DataCopy(g[32], x, 8);
    que.FreeTensor(x);
  }
  SyncAll();  // core 0 waits here, so core 1's copy is what meets its unflushed write
  if (!flush && GetBlockIdx() == 0) {
    DataCacheCleanAndInvalid<float, CacheLine::SINGLE_CACHE_LINE, DcciDst::CACHELINE_OUT>(g);
  }
}

// Both cores write one 64-byte line (different words) with SetValue.
void two_cores_one_line(const Bufs& b) {
  GlobalTensor<float> g;
  g.SetGlobalBuffer(b.f(0), 64);
  g.SetValue(GetBlockIdx(), 1.0f);
  DataCacheCleanAndInvalid<float, CacheLine::SINGLE_CACHE_LINE, DcciDst::CACHELINE_OUT>(g);
}

// Both cores write one line with SetValue, ordered by SyncAll, but core 0 never wrote its line back: the second
// core dirties a line the first still holds dirty.
void two_cores_dirty_one_line(const Bufs& b) {
  GlobalTensor<float> g;
  g.SetGlobalBuffer(b.f(0), 64);
  if (GetBlockIdx() == 0) g.SetValue(0, 1.0f);
  SyncAll();
  if (GetBlockIdx() == 1) g.SetValue(1, 2.0f);
  SyncAll();
  DataCacheCleanAndInvalid<float, CacheLine::SINGLE_CACHE_LINE, DcciDst::CACHELINE_OUT>(g);
}

// A scalar GM write never written back.
void setvalue_unflushed(const Bufs& b) {
  GlobalTensor<float> g;
  g.SetGlobalBuffer(b.f(0), 64);
  g.SetValue(3, 1.0f);
}

// Core 0 reads gm[0] (caching its line); core 1 then overwrites it by DMA; core 0 reads it again without
// invalidating its cache first.
void stale_scalar_read(const Bufs& b) {
  GlobalTensor<float> g;
  g.SetGlobalBuffer(b.f(0), 64);
  TPipe pipe;
  TQue<TPosition::VECOUT, 1> que;
  pipe.InitBuffer(que, 1, 256);
  float seen = 0.0f;
  if (GetBlockIdx() == 0) seen = g.GetValue(0);
  SyncAll();
  if (GetBlockIdx() == 1) {
    LocalTensor<float> y = que.AllocTensor<float>();
    Duplicate(y, 9.0f, 64);
    que.EnQue(y);
    y = que.DeQue<float>();
    DataCopy(g, y, 64);
    que.FreeTensor(y);
  }
  SyncAll();
  if (GetBlockIdx() == 0) seen += g.GetValue(0);
  (void)seen;
}

// Core 0 writes gm[0:64) by DMA, core 1 reads it by DMA; ordered only with SyncAll (then gm[0:64) = 4 and core 1
// copies it to gm[64:128)).
template <bool sync>
void gm_cross_core(const Bufs& b) {
  GlobalTensor<float> g;
  g.SetGlobalBuffer(b.f(0), 128);
  TPipe pipe;
  TQue<TPosition::VECOUT, 1> out;
  TQueBind<TPosition::VECIN, TPosition::VECOUT, 1> through;
  pipe.InitBuffer(out, 1, 256);
  pipe.InitBuffer(through, 1, 256);
  if (GetBlockIdx() == 0) {
    LocalTensor<float> y = out.AllocTensor<float>();
    Duplicate(y, 4.0f, 64);
    out.EnQue(y);
    y = out.DeQue<float>();
    DataCopy(g, y, 64);
    out.FreeTensor(y);
  }
  if (sync) SyncAll();
  if (GetBlockIdx() == 1) {
    LocalTensor<float> x = through.AllocTensor<float>();
    DataCopy(x, g, 64);
    through.EnQue(x);
    x = through.DeQue<float>();
    DataCopy(g[64], x, 64);
    through.FreeTensor(x);
  }
}

void syncall_early_exit(const Bufs&) {
  if (GetBlockIdx() == 1) return;
  SyncAll();
}

void syncall_in_aiv_only(const Bufs&) { SyncAll(); }

void cross_core_in_aiv_only(const Bufs&) { CrossCoreSetFlag<0, PIPE_MTE3>(1); }

void cross_core_syncall_id(const Bufs&) { CrossCoreSetFlag<0, PIPE_MTE3>(12); }

// ---- mix launches (AIC + 2 AIV per core) ----

// Nobody sets flag 3.
void deadlock_flag(const Bufs&) {
  if ASCEND_IS_AIV {
    CrossCoreWaitFlag(3);
  }
}

void cross_core_saturation(const Bufs&) {
  if ASCEND_IS_AIC {
    for (int i = 0; i < 16; ++i) CrossCoreSetFlag<2, PIPE_FIX>(3);
  }
}

// Cross-core handshake and SyncAll: the AIC releases both AIVs (mode 2); each AIV writes its index + 1 into its own
// 64-byte slot and writes it back; after SyncAll AIV 0 sums every slot into gm[63].
void handshake(const Bufs& b) {
  GlobalTensor<float> g;
  g.SetGlobalBuffer(b.f(0), 16 * 8);
  if ASCEND_IS_AIC {
    CrossCoreSetFlag<2, PIPE_FIX>(1);
    return;
  }
  CrossCoreWaitFlag(1);
  g[16 * GetBlockIdx()].SetValue(0, float(GetBlockIdx() + 1));
  DataCacheCleanAndInvalid<float, CacheLine::SINGLE_CACHE_LINE, DcciDst::CACHELINE_OUT>(g[16 * GetBlockIdx()]);
  SyncAll();
  if (GetBlockIdx() == 0) {
    float s = 0;
    for (int64_t i = 0; i < 2 * GetBlockNum(); ++i) s += g.GetValue(16 * i);
    g.SetValue(16 * 7 + 15, s);
    DataCacheCleanAndInvalid<float, CacheLine::SINGLE_CACHE_LINE, DcciDst::CACHELINE_OUT>(g[16 * 7]);
  }
}

// Mode 1: the two AIVs of a core meet. AIV 1 writes gm[0:64) by DMA before setting; AIV 0 reads it after waiting.
void mode1_barrier(const Bufs& b) {
  if ASCEND_IS_AIC {
    return;
  }
  GlobalTensor<float> g;
  g.SetGlobalBuffer(b.f(0), 128);
  TPipe pipe;
  TQue<TPosition::VECOUT, 1> out;
  TQueBind<TPosition::VECIN, TPosition::VECOUT, 1> through;
  pipe.InitBuffer(out, 1, 256);
  pipe.InitBuffer(through, 1, 256);
  if (GetSubBlockIdx() == 1) {
    LocalTensor<float> y = out.AllocTensor<float>();
    Duplicate(y, 6.0f, 64);
    out.EnQue(y);
    y = out.DeQue<float>();
    DataCopy(g, y, 64);
    out.FreeTensor(y);
  }
  CrossCoreSetFlag<1, PIPE_MTE3>(2);
  CrossCoreWaitFlag(2);
  if (GetSubBlockIdx() == 0) {
    LocalTensor<float> x = through.AllocTensor<float>();
    DataCopy(x, g, 64);
    through.EnQue(x);
    x = through.DeQue<float>();
    DataCopy(g[64], x, 64);
    through.FreeTensor(x);
  }
}

// ---- Matmul (vector-master) ----
// gm 0: C fp32 [16, 16]; gm 1: A and B fp16 [16, 16] each (A at 0, B at 256).

using HalfType = MatmulType<TPosition::GM, CubeFormat::ND, half>;
using FloatType = MatmulType<TPosition::GM, CubeFormat::ND, float>;
using Mm = Matmul<HalfType, HalfType, FloatType>;

TCubeTiling tiling16() {
  TCubeTiling t;
  t.usedCoreNum = 1, t.M = t.N = t.Ka = t.Kb = 16, t.singleCoreM = t.singleCoreN = t.singleCoreK = 16;
  t.baseM = t.baseN = t.baseK = 16, t.depthA1 = t.depthB1 = 1;
  t.stepM = t.stepN = t.stepKa = t.stepKb = 1, t.dbL0A = t.dbL0B = t.dbL0C = 1;  // all valid, no double buffers
  return t;
}

// C = A B asynchronously; C is copied to gm 0 [256, 512) by DMA before (race) or after WaitIterateAll.
template <bool wait>
void matmul_async(const Bufs& b) {
  GlobalTensor<float> c;
  GlobalTensor<half> ab;
  c.SetGlobalBuffer(b.f(0), 512);
  ab.SetGlobalBuffer(b.h(1), 512);
  TPipe pipe;
  Mm mm;
  const TCubeTiling t = tiling16();
  REGIST_MATMUL_OBJ(&pipe, GetSysWorkSpacePtr(), mm, &t);
  TQueBind<TPosition::VECIN, TPosition::VECOUT, 1> through;
  pipe.InitBuffer(through, 1, 1024);
  if (GetBlockIdx() != 0) return;
  mm.SetOrgShape(16, 16, 16);
  mm.SetTensorA(ab);
  mm.SetTensorB(ab[256]);
  mm.template IterateAll<false>(c, 0, false, true);
  if (wait) mm.WaitIterateAll();
  LocalTensor<float> x = through.AllocTensor<float>();
  DataCopy(x, c, 256);
  through.EnQue(x);
  x = through.DeQue<float>();
  DataCopy(c[256], x, 256);
  through.FreeTensor(x);
  if (!wait) mm.WaitIterateAll();
  mm.End();
}

void matmul_after_initbuffer(const Bufs&) {
  TPipe pipe;
  TBuf<TPosition::VECCALC> buf;
  if ASCEND_IS_AIV {
    pipe.InitBuffer(buf, 256);
  }
  Mm mm;
  const TCubeTiling t = tiling16();
  REGIST_MATMUL_OBJ(&pipe, GetSysWorkSpacePtr(), mm, &t);
}

void matmul_without_end(const Bufs& b) {
  GlobalTensor<float> c;
  GlobalTensor<half> ab;
  c.SetGlobalBuffer(b.f(0), 512);
  ab.SetGlobalBuffer(b.h(1), 512);
  TPipe pipe;
  Mm mm1, mm2;
  const TCubeTiling t = tiling16();
  REGIST_MATMUL_OBJ(&pipe, GetSysWorkSpacePtr(), mm1, &t, mm2, &t);
  if (GetBlockIdx() != 0) return;
  mm1.SetOrgShape(16, 16, 16);
  mm1.SetTensorA(ab);
  mm1.SetTensorB(ab[256]);
  mm1.IterateAll(c);
  mm2.SetOrgShape(16, 16, 16);
}

// The AIV writes A by DMA and asks the cube to read it: the scalar unit, which sends the request, must wait for the
// copy (MTE3 -> S); the compiler cannot see that dependency.
template <bool flag>
void matmul_reads_dma_output(const Bufs& b) {
  GlobalTensor<float> c;
  GlobalTensor<half> ab;
  c.SetGlobalBuffer(b.f(0), 512);
  ab.SetGlobalBuffer(b.h(1), 512);
  TPipe pipe;
  Mm mm;
  const TCubeTiling t = tiling16();
  REGIST_MATMUL_OBJ(&pipe, GetSysWorkSpacePtr(), mm, &t);
  TQue<TPosition::VECOUT, 1> out;
  pipe.InitBuffer(out, 1, 512);
  if (GetBlockIdx() != 0) return;
  LocalTensor<half> y = out.AllocTensor<half>();
  Duplicate(y, half(1.0f), 256);
  out.EnQue(y);
  y = out.DeQue<half>();
  DataCopy(ab, y, 256);
  out.FreeTensor(y);
  if (flag) {
    const TEventID id = GetTPipePtr()->FetchEventID(HardEvent::MTE3_S);
    SetFlag<HardEvent::MTE3_S>(id);
    WaitFlag<HardEvent::MTE3_S>(id);
  }
  mm.SetOrgShape(16, 16, 16);
  mm.SetTensorA(ab);
  mm.SetTensorB(ab[256]);
  mm.IterateAll(c);
  mm.End();
}

// How AIV 0 of core 1 touches C in matmul_atomic, ordered with nothing.
enum class PlainAccess { kNone, kRead, kWrite };

// C += A B with IterateAll's enAtomic = 1 by AIV 0 of every core: atomic adds to the same GM commute, so they need
// no order among themselves. With kRead, AIV 0 of core 1 copies C[0, 256) by DMA to C[256, 512) instead (its read
// races with the other cores' atomic adds); with kWrite, C[256, 512) to C[0, 256) (its write races with them).
template <uint8_t enAtomic, PlainAccess plain>
void matmul_atomic(const Bufs& b) {
  GlobalTensor<float> c;
  GlobalTensor<half> ab;
  c.SetGlobalBuffer(b.f(0), 512);
  ab.SetGlobalBuffer(b.h(1), 512);
  TPipe pipe;
  Mm mm;
  const TCubeTiling t = tiling16();
  REGIST_MATMUL_OBJ(&pipe, GetSysWorkSpacePtr(), mm, &t);
  TQueBind<TPosition::VECIN, TPosition::VECOUT, 1> through;
  pipe.InitBuffer(through, 1, 1024);
  if (GetSubBlockIdx() != 0) return;
  if (plain != PlainAccess::kNone && GetBlockIdx() == 2) {
    const uint32_t from = plain == PlainAccess::kRead ? 0 : 256;
    LocalTensor<float> x = through.AllocTensor<float>();
    DataCopy(x, c[from], 256);
    through.EnQue(x);
    x = through.DeQue<float>();
    DataCopy(c[256 - from], x, 256);
    through.FreeTensor(x);
    return;
  }
  mm.SetOrgShape(16, 16, 16);
  mm.SetTensorA(ab);
  mm.SetTensorB(ab[256]);
  mm.IterateAll(c, enAtomic);
  mm.End();
}

// ---- buffers ----

void write_input(const Bufs& b) {
  GlobalTensor<float> g;
  g.SetGlobalBuffer(b.f(0), 64);
  g.SetValue(0, 1.0f);
  DataCacheCleanAndInvalid<float, CacheLine::SINGLE_CACHE_LINE, DcciDst::CACHELINE_OUT>(g);
}

void writes_nothing(const Bufs&) {}

// ---- arithmetic of the vector instructions (correct kernels whose results the tests check) ----

// Per-row broadcast: rows of x [4, 16] (gm[0..64)) scaled by stats gm[64..68) via Brcb + level-0 Mul; result to
// gm[0..64). Also Cast fp32 -> half with CAST_RINT of gm[72..88) written back as floats.
void row_broadcast(const Bufs& b) {
  GlobalTensor<float> g;
  g.SetGlobalBuffer(b.f(0), 128);
  TPipe pipe;
  TQueBind<TPosition::VECIN, TPosition::VECOUT, 1> que;
  TBuf<TPosition::VECCALC> wide, h;
  pipe.InitBuffer(que, 1, 128 * sizeof(float));
  pipe.InitBuffer(wide, 8 * 8 * sizeof(float));
  pipe.InitBuffer(h, 16 * sizeof(half));
  LocalTensor<float> x = que.AllocTensor<float>();
  DataCopy(x, g, 128);
  const TEventID mte2_v = GetTPipePtr()->FetchEventID(HardEvent::MTE2_V);
  SetFlag<HardEvent::MTE2_V>(mte2_v);
  WaitFlag<HardEvent::MTE2_V>(mte2_v);
  LocalTensor<float> w = wide.Get<float>();
  Brcb(w, x[64], 1, BrcbRepeatParams(1, 8));  // 8 scalars -> 8 blocks; rows use the first 4
  Mul(x, x, w, 16, 4, BinaryRepeatParams(1, 1, 0, 2, 2, 1));
  LocalTensor<half> y = h.Get<half>();
  Cast(y, x[72], RoundMode::CAST_RINT, 16);
  Cast(x[72], y, RoundMode::CAST_NONE, 16);
  const TEventID v_mte3 = GetTPipePtr()->FetchEventID(HardEvent::V_MTE3);
  SetFlag<HardEvent::V_MTE3>(v_mte3);
  WaitFlag<HardEvent::V_MTE3>(v_mte3);
  que.EnQue(x);
  x = que.DeQue<float>();
  DataCopy(g, x, 128);
  que.FreeTensor(x);
}

// gm 0 [0, 320) into UB, `reduce(x)` with the copy waited for, then `results` floats from x[320] to gm 0 [320, ...)
// once the vector work is done: the frame of the reduction tests below.
template <typename F>
void reduce_in_ub(const Bufs& b, uint32_t results, F reduce) {
  GlobalTensor<float> g;
  g.SetGlobalBuffer(b.f(0), 384);
  TPipe pipe;
  TQueBind<TPosition::VECIN, TPosition::VECOUT, 1> que;
  pipe.InitBuffer(que, 1, 384 * sizeof(float));
  LocalTensor<float> x = que.AllocTensor<float>();
  DataCopy(x, g, 320);
  const TEventID mte2_v = GetTPipePtr()->FetchEventID(HardEvent::MTE2_V);
  SetFlag<HardEvent::MTE2_V>(mte2_v);
  WaitFlag<HardEvent::MTE2_V>(mte2_v);
  reduce(x);
  const TEventID v_mte3 = GetTPipePtr()->FetchEventID(HardEvent::V_MTE3);
  SetFlag<HardEvent::V_MTE3>(v_mte3);
  WaitFlag<HardEvent::V_MTE3>(v_mte3);
  que.EnQue(x);
  x = que.DeQue<float>();
  DataCopy(g[320], x[320], results);
  que.FreeTensor(x);
}

// Per-repeat reductions of a [4, 80] fp32 block (row stride 10 blocks): the max of each row's first 48 lanes to
// gm[320..324), the sum of its first 64 to gm[328..332), (max, index) pairs of its first 64 to gm[336..344).
void row_reductions(const Bufs& b) {
  reduce_in_ub(b, 32, [](const LocalTensor<float>& x) {
    WholeReduceMax(x[320], x, 48, 4, 1, 1, 10, ReduceOrder::ORDER_ONLY_VALUE);
    WholeReduceSum(x[328], x, 64, 4, 1, 1, 10);
    WholeReduceMax(x[336], x, 64, 4, 1, 1, 10, ReduceOrder::ORDER_VALUE_INDEX);
  });
}

// Per-block reductions of gm[0..320) as 4 rows of 80 floats (10 blocks apart): BlockReduceSum of each row's first
// 40 lanes (blocks 0..4) into gm[320..352), whose blocks 5..7 of each row keep the -7 written before; BlockReduceMax
// of lanes 0, 1 of every block (a bitwise mask) into gm[352..384).
void block_reductions(const Bufs& b) {
  reduce_in_ub(b, 64, [](const LocalTensor<float>& x) {
    Duplicate(x[320], -7.0f, 32);
    BlockReduceSum(x[320], x, 4, 40, 1, 1, 10);
    const uint64_t pairs[2] = {0x0303030303030303ull, 0};
    BlockReduceMax(x[352], x, 4, pairs, 1, 1, 10);
  });
}

// 64 ones in a 128-float UB buffer, then `f(x)`: the frame of the one-reduction rule kernels below.
template <typename F>
void one_reduction(F f) {
  TPipe pipe;
  TBuf<TPosition::VECCALC> buf;
  pipe.InitBuffer(buf, 128 * sizeof(float));
  LocalTensor<float> x = buf.Get<float>();
  Duplicate(x, 1.0f, 64);
  f(x);
}

// Per-block results of fp32 need a 32-byte aligned destination (ReduceDataBlock.md).
void block_reduce_misaligned(const Bufs&) {
  one_reduction([](const LocalTensor<float>& x) { BlockReduceSum(x[68], x, 1, 64, 1, 1, 8); });
}

// Reduction strides are 16-bit fields (ReduceDataBlock.md, ReduceRepeat.md): a source repeat stride of 70000 blocks.
void reduce_wide_stride(const Bufs&) {
  one_reduction([](const LocalTensor<float>& x) { BlockReduceSum(x[64], x, 1, 64, 1, 1, 70000); });
}

// A reduction writes UB: a destination that is no UB tensor (a default LocalTensor) is rejected.
void reduce_into_nothing(const Bufs&) {
  one_reduction([](const LocalTensor<float>& x) { WholeReduceSum(LocalTensor<float>(), x, 64, 1, 1, 1, 8); });
}

// (value, index) pairs of fp32 need an 8-byte aligned destination (ReduceRepeat.md, table 3).
void reduce_misaligned(const Bufs&) {
  one_reduction(
      [](const LocalTensor<float>& x) { WholeReduceMax(x[65], x, 64, 1, 1, 1, 8, ReduceOrder::ORDER_VALUE_INDEX); });
}

// Compare + Select (gm[0..64) < gm[64..128) ? gm[0..64) : -1), then a level-0 Duplicate writing 7 into lanes
// 3..5 of the result, and Cast of gm[0..16) to half with FLOOR / CEIL / ROUND / TRUNC into gm[128..192).
void select_and_round(const Bufs& b) {
  GlobalTensor<float> g;
  g.SetGlobalBuffer(b.f(0), 192);
  TPipe pipe;
  TQue<TPosition::VECIN, 1> in;
  TQue<TPosition::VECOUT, 1> out;
  TBuf<TPosition::VECCALC> bits, h;
  pipe.InitBuffer(in, 1, 128 * sizeof(float));
  pipe.InitBuffer(out, 1, 128 * sizeof(float));
  pipe.InitBuffer(bits, 32);
  pipe.InitBuffer(h, 16 * sizeof(half));
  LocalTensor<float> xy = in.AllocTensor<float>();
  DataCopy(xy, g, 128);
  in.EnQue(xy);
  xy = in.DeQue<float>();
  LocalTensor<float> x = xy, y = xy[64];
  LocalTensor<float> r = out.AllocTensor<float>();
  LocalTensor<uint8_t> m = bits.Get<uint8_t>();
  Compare(m, x, y, CMPMODE::LT, 64);
  Select(r, m, x, -1.0f, SELMODE::VSEL_TENSOR_SCALAR_MODE, 64);
  uint64_t lanes[2] = {0b111000, 0};
  Duplicate(r, 7.0f, lanes, 1, 1, 8);
  const RoundMode modes[] = {RoundMode::CAST_FLOOR, RoundMode::CAST_CEIL, RoundMode::CAST_ROUND, RoundMode::CAST_TRUNC};
  LocalTensor<half> rh = h.Get<half>();
  for (int i = 0; i < 4; ++i) {
    Cast(rh, x, modes[i], 16);
    Cast(r[64 + 16 * i], rh, RoundMode::CAST_NONE, 16);
  }
  in.FreeTensor(xy);
  out.EnQue(r);
  r = out.DeQue<float>();
  DataCopy(g[64], r, 128);
  out.FreeTensor(r);
}

// ---- timeline calibration (one AIV unless said): what the model charges for known work ----

// gm 0 [0, n) -> UB -> gm 0 [n, 2n) in chunks of `chunk` floats through a TQueBind with `buffers` buffers, `passes`
// times; the counts come from gm 1 (int32: n, chunk, buffers, passes).
void copy_through(const Bufs& b) {
  const int32_t* args = reinterpret_cast<const int32_t*>(b.p.at(1));
  const int32_t n = args[0], chunk = args[1], buffers = args[2], passes = args[3];
  GlobalTensor<float> g;
  g.SetGlobalBuffer(b.f(0), 2 * uint64_t(n));
  TPipe pipe;
  TQueBind<TPosition::VECIN, TPosition::VECOUT, 1> que;
  pipe.InitBuffer(que, uint8_t(buffers), chunk * sizeof(float));
  for (int32_t at = 0; at < passes * n; at += chunk) {
    LocalTensor<float> x = que.AllocTensor<float>();
    DataCopy(x, g[at % n], uint32_t(chunk));
    que.EnQue(x);
    x = que.DeQue<float>();
    DataCopy(g[n + at % n], x, uint32_t(chunk));
    que.FreeTensor(x);
  }
}

// One vector instruction, then (dependent) its result copied out by MTE3; or (independent) an MTE2 copy into another
// buffer at the same time.
template <bool dependent>
void two_instructions(const Bufs& b) {
  GlobalTensor<float> g;
  g.SetGlobalBuffer(b.f(0), 8192);
  TPipe pipe;
  TBuf<TPosition::VECCALC> a, c;
  pipe.InitBuffer(a, 8192 * sizeof(float));
  pipe.InitBuffer(c, 8192 * sizeof(float));
  LocalTensor<float> x = a.Get<float>(), y = c.Get<float>();
  Duplicate(x, 1.0f, 8192);
  if (dependent) {
    const TEventID id = GetTPipePtr()->FetchEventID(HardEvent::V_MTE3);
    SetFlag<HardEvent::V_MTE3>(id);
    WaitFlag<HardEvent::V_MTE3>(id);
    DataCopy(g, x, 8192);
  } else {
    DataCopy(y, g, 8192);
    const TEventID id = GetTPipePtr()->FetchEventID(HardEvent::MTE2_V);
    SetFlag<HardEvent::MTE2_V>(id);
    WaitFlag<HardEvent::MTE2_V>(id);
  }
}

// AIV 0 sends 8 synchronous 16 x 512 x 512 Matmul requests (A, B, C in gm 1 and gm 0, reused so they stay in L2):
// with 16 rows, moving B from L1 into L0B takes the cube longer than multiplying it.
void matmul_thin(const Bufs& b) {
  GlobalTensor<float> c;
  GlobalTensor<half> ab;
  c.SetGlobalBuffer(b.f(0), 16 * 512);
  ab.SetGlobalBuffer(b.h(1), 16 * 512 + 512 * 512);
  TPipe pipe;
  Mm mm;
  TCubeTiling t;
  t.usedCoreNum = 1, t.M = t.singleCoreM = 16, t.N = t.singleCoreN = 512, t.Ka = t.Kb = t.singleCoreK = 512;
  t.baseM = 16, t.baseN = 128, t.baseK = 64, t.depthA1 = t.depthB1 = 2;
  t.stepM = t.stepN = t.stepKa = t.stepKb = 1, t.dbL0A = t.dbL0B = 2, t.dbL0C = 1;
  REGIST_MATMUL_OBJ(&pipe, GetSysWorkSpacePtr(), mm, &t);
  if (GetSubBlockIdx() != 0) return;
  for (int i = 0; i < 8; ++i) {
    mm.SetOrgShape(16, 512, 512);
    mm.SetTensorA(ab);
    mm.SetTensorB(ab[16 * 512]);
    mm.IterateAll(c);
    mm.End();
  }
}

// Eight repeats of each vector instruction whose rate the A2 table fixes, one after the other on UB data of type T
// (no GM): Add, Exp, Ln, Div, Reciprocal, then WholeReduceMax, WholeReduceSum, BlockReduceMax and BlockReduceSum over
// the same eight repeats.
template <typename T>
void vector_rates(const Bufs&) {
  constexpr int32_t lanes = 256 / sizeof(T), n = 8 * lanes;
  TPipe pipe;
  TBuf<TPosition::VECCALC> a, c, r;
  pipe.InitBuffer(a, n * sizeof(T));
  pipe.InitBuffer(c, n * sizeof(T));
  pipe.InitBuffer(r, 256);
  LocalTensor<T> x = a.Get<T>(), y = c.Get<T>(), red = r.Get<T>();
  Duplicate(x, T(1.0f), n);
  Duplicate(y, T(2.0f), n);
  Add(y, x, y, n);
  Exp(y, y, n);
  Ln(y, y, n);
  Div(y, y, x, n);
  Reciprocal(y, y, n);
  WholeReduceMax(red, y, lanes, 8, 1, 1, 8, ReduceOrder::ORDER_ONLY_VALUE);
  WholeReduceSum(red, y, lanes, 8, 1, 1, 8);
  BlockReduceMax(red, y, 8, lanes, 1, 1, 8);
  BlockReduceSum(red, y, 8, lanes, 1, 1, 8);
}

// Both AIVs of each core send 16 back-to-back 128 x 256 x 512 Matmul requests (A, B, C in gm 1 and gm 0, reused so
// they stay in L2): the cube's share of the time.
void matmul_only(const Bufs& b) {
  GlobalTensor<float> c;
  GlobalTensor<half> ab;
  c.SetGlobalBuffer(b.f(0), 2ull * GetBlockNum() * 128 * 256);  // a C per AIV
  ab.SetGlobalBuffer(b.h(1), 128 * 512 + 512 * 256);
  TPipe pipe;
  Mm mm;
  TCubeTiling t;
  t.usedCoreNum = 1, t.M = t.singleCoreM = 128, t.N = t.singleCoreN = 256, t.Ka = t.Kb = t.singleCoreK = 512;
  t.baseM = t.baseN = 128, t.baseK = 64, t.depthA1 = t.depthB1 = 2;
  t.stepM = t.stepN = t.stepKa = t.stepKb = 1, t.dbL0A = t.dbL0B = 2,
  t.dbL0C = 1;  // L0C: 128 x 128 fp32 twice would fill it
  REGIST_MATMUL_OBJ(&pipe, GetSysWorkSpacePtr(), mm, &t);
  for (int i = 0; i < 16; ++i) {
    mm.SetOrgShape(128, 256, 512);
    mm.SetTensorA(ab);
    mm.SetTensorB(ab[128 * 512]);
    mm.IterateAll(c[GetBlockIdx() * 128 * 256]);
    mm.End();
  }
}

using Kernel = void (*)(const Bufs&);
const std::map<std::string, std::pair<ascend_sim::KernelType, Kernel>> kKernels = {
    {"ub_capacity", {ascend_sim::KernelType::kAivOnly, ub_capacity}},
    {"l1_capacity", {ascend_sim::KernelType::kMixAic1To2, l1_capacity}},
    {"matmul_l1", {ascend_sim::KernelType::kMixAic1To2, matmul_l1}},
    {"matmul_depth", {ascend_sim::KernelType::kMixAic1To2, matmul_depth}},
    {"matmul_l0c", {ascend_sim::KernelType::kMixAic1To2, matmul_l0c}},
    {"unaligned", {ascend_sim::KernelType::kAivOnly, unaligned}},
    {"copy_length", {ascend_sim::KernelType::kAivOnly, copy_length}},
    {"repeat_limit", {ascend_sim::KernelType::kAivOnly, repeat_limit}},
    {"gm_out_of_bounds", {ascend_sim::KernelType::kAivOnly, gm_out_of_bounds}},
    {"gm_outside_buffers", {ascend_sim::KernelType::kAivOnly, gm_outside_buffers}},
    {"unmatched_set_flag", {ascend_sim::KernelType::kAivOnly, unmatched_set_flag}},
    {"wait_without_set", {ascend_sim::KernelType::kAivOnly, wait_without_set}},
    {"set_flag_twice", {ascend_sim::KernelType::kAivOnly, set_flag_twice}},
    {"reserved_event_id", {ascend_sim::KernelType::kAivOnly, reserved_event_id}},
    {"cube_event_on_aiv", {ascend_sim::KernelType::kAivOnly, cube_event_on_aiv}},
    {"pipe_barrier_s", {ascend_sim::KernelType::kAivOnly, pipe_barrier_s}},
    {"hardcoded_event_id", {ascend_sim::KernelType::kAivOnly, hardcoded_event_id}},
    {"fetched_id_collides", {ascend_sim::KernelType::kAivOnly, fetched_id_collides}},
    {"enque_without_deque", {ascend_sim::KernelType::kAivOnly, enque_without_deque}},
    {"alloc_without_free", {ascend_sim::KernelType::kAivOnly, alloc_without_free}},
    {"use_after_free", {ascend_sim::KernelType::kAivOnly, use_after_free}},
    {"enque_freed", {ascend_sim::KernelType::kAivOnly, enque_freed}},
    {"vecin_copy_through", {ascend_sim::KernelType::kAivOnly, vecin_copy_through}},
    {"bind_copy_through", {ascend_sim::KernelType::kAivOnly, bind_copy_through}},
    {"tbuf_no_flag", {ascend_sim::KernelType::kAivOnly, tbuf_no_flag}},
    {"tbuf_reuse_no_flag", {ascend_sim::KernelType::kAivOnly, tbuf_reuse<false>}},
    {"tbuf_reuse_flagged", {ascend_sim::KernelType::kAivOnly, tbuf_reuse<true>}},
    {"mte2_overlap", {ascend_sim::KernelType::kAivOnly, mte2_overlap<false>}},
    {"mte2_overlap_barrier", {ascend_sim::KernelType::kAivOnly, mte2_overlap<true>}},
    {"scalar_reads_vector", {ascend_sim::KernelType::kAivOnly, scalar_reads_vector}},
    {"setvalue_then_dma", {ascend_sim::KernelType::kMixAiv1To0, setvalue_then_dma<false>}},
    {"setvalue_flushed_then_dma", {ascend_sim::KernelType::kMixAiv1To0, setvalue_then_dma<true>}},
    {"two_cores_one_line", {ascend_sim::KernelType::kMixAiv1To0, two_cores_one_line}},
    {"two_cores_dirty_one_line", {ascend_sim::KernelType::kMixAiv1To0, two_cores_dirty_one_line}},
    {"setvalue_unflushed", {ascend_sim::KernelType::kAivOnly, setvalue_unflushed}},
    {"stale_scalar_read", {ascend_sim::KernelType::kMixAiv1To0, stale_scalar_read}},
    {"gm_cross_core_race", {ascend_sim::KernelType::kMixAiv1To0, gm_cross_core<false>}},
    {"gm_cross_core_synced", {ascend_sim::KernelType::kMixAiv1To0, gm_cross_core<true>}},
    {"syncall_early_exit", {ascend_sim::KernelType::kMixAiv1To0, syncall_early_exit}},
    {"syncall_in_aiv_only", {ascend_sim::KernelType::kAivOnly, syncall_in_aiv_only}},
    {"cross_core_in_aiv_only", {ascend_sim::KernelType::kAivOnly, cross_core_in_aiv_only}},
    {"cross_core_syncall_id", {ascend_sim::KernelType::kMixAiv1To0, cross_core_syncall_id}},
    {"deadlock_flag", {ascend_sim::KernelType::kMixAic1To2, deadlock_flag}},
    {"cross_core_saturation", {ascend_sim::KernelType::kMixAic1To2, cross_core_saturation}},
    {"handshake", {ascend_sim::KernelType::kMixAic1To2, handshake}},
    {"mode1_barrier", {ascend_sim::KernelType::kMixAic1To2, mode1_barrier}},
    {"matmul_async_unwaited_read", {ascend_sim::KernelType::kMixAic1To2, matmul_async<false>}},
    {"matmul_async_waited", {ascend_sim::KernelType::kMixAic1To2, matmul_async<true>}},
    {"matmul_after_initbuffer", {ascend_sim::KernelType::kMixAic1To2, matmul_after_initbuffer}},
    {"matmul_without_end", {ascend_sim::KernelType::kMixAic1To2, matmul_without_end}},
    {"matmul_reads_dma_output", {ascend_sim::KernelType::kMixAic1To2, matmul_reads_dma_output<false>}},
    {"matmul_reads_dma_output_flagged", {ascend_sim::KernelType::kMixAic1To2, matmul_reads_dma_output<true>}},
    {"matmul_atomic_add", {ascend_sim::KernelType::kMixAic1To2, matmul_atomic<1, PlainAccess::kNone>}},
    {"matmul_atomic_vs_read", {ascend_sim::KernelType::kMixAic1To2, matmul_atomic<1, PlainAccess::kRead>}},
    {"matmul_atomic_vs_write", {ascend_sim::KernelType::kMixAic1To2, matmul_atomic<1, PlainAccess::kWrite>}},
    {"matmul_atomic_max", {ascend_sim::KernelType::kMixAic1To2, matmul_atomic<2, PlainAccess::kNone>}},
    {"write_input", {ascend_sim::KernelType::kAivOnly, write_input}},
    {"writes_nothing", {ascend_sim::KernelType::kAivOnly, writes_nothing}},
    {"row_broadcast", {ascend_sim::KernelType::kAivOnly, row_broadcast}},
    {"row_reductions", {ascend_sim::KernelType::kAivOnly, row_reductions}},
    {"reduce_misaligned", {ascend_sim::KernelType::kAivOnly, reduce_misaligned}},
    {"block_reductions", {ascend_sim::KernelType::kAivOnly, block_reductions}},
    {"block_reduce_misaligned", {ascend_sim::KernelType::kAivOnly, block_reduce_misaligned}},
    {"reduce_wide_stride", {ascend_sim::KernelType::kAivOnly, reduce_wide_stride}},
    {"reduce_into_nothing", {ascend_sim::KernelType::kAivOnly, reduce_into_nothing}},
    {"select_and_round", {ascend_sim::KernelType::kAivOnly, select_and_round}},
    {"copy_through", {ascend_sim::KernelType::kAivOnly, copy_through}},
    {"dependent_pair", {ascend_sim::KernelType::kAivOnly, two_instructions<true>}},
    {"independent_pair", {ascend_sim::KernelType::kAivOnly, two_instructions<false>}},
    {"matmul_only", {ascend_sim::KernelType::kMixAic1To2, matmul_only}},
    {"matmul_thin", {ascend_sim::KernelType::kMixAic1To2, matmul_thin}},
    {"vector_rates_fp32", {ascend_sim::KernelType::kAivOnly, vector_rates<float>}},
    {"vector_rates_fp16", {ascend_sim::KernelType::kAivOnly, vector_rates<half>}},
};

// Runs kernel `name` on `cores` cores over the given GM buffers (role per buffer: input, output, inout, scratch),
// re-raising the simulator's error; `seed` switches the simulated threads in a seeded order. Returns the timeline:
// end (cycles, the last instruction's completion), busy cycles per unit ("AIV 0 V", "core 0 cube", "core 0 port") and
// the traced instructions as (thread, pipe, start, end, name) tuples.
py::dict run(const std::string& name, const std::vector<at::Tensor>& buffers, const std::vector<std::string>& roles,
             int64_t cores, std::optional<uint64_t> seed) {
  static const std::map<std::string, ascend_sim::GmRole> kRoles = {{"input", ascend_sim::GmRole::kInput},
                                                                   {"output", ascend_sim::GmRole::kOutput},
                                                                   {"inout", ascend_sim::GmRole::kInOut},
                                                                   {"scratch", ascend_sim::GmRole::kScratch}};
  const auto& [type, kernel] = kKernels.at(name);
  ascend_sim::LaunchOptions options;
  options.seeded = seed.has_value();
  options.seed = seed.value_or(0);
  options.trace = true;
  ascend_sim::Launch launch(type, uint32_t(cores), options);
  Bufs b;
  for (size_t i = 0; i < buffers.size(); ++i) {
    auto* p = static_cast<uint8_t*>(buffers[i].data_ptr());
    launch.add_buffer(p, uint64_t(buffers[i].nbytes()), "gm" + std::to_string(i), kRoles.at(roles.at(i)));
    b.p.push_back(p);
  }
  launch.run([&] { kernel(b); });
  py::dict busy;
  double end = 0.0;
  for (const auto& t : launch.threads()) {
    end = std::max(end, t->times.end());
    for (uint32_t p = 0; p < ascend_sim::kPipeCount; ++p) {
      if (t->times.busy[p] > 0)
        busy[py::str(t->describe() + " " + ascend_sim::pipe_name(ascend_sim::Pipe(p)))] = t->times.busy[p];
    }
  }
  for (uint32_t core = 0; core < uint32_t(cores); ++core) {
    busy[py::str("core " + std::to_string(core) + " cube")] = launch.cube(core).busy();
    busy[py::str("core " + std::to_string(core) + " port")] = launch.port(core).busy();
  }
  py::list events;
  for (const auto& t : launch.threads()) {
    for (const ascend_sim::TraceEvent& e : t->trace) {
      events.append(py::make_tuple(t->describe(), ascend_sim::pipe_name(e.pipe), e.start, e.end, e.what));
    }
  }
  py::dict out;
  out["end"] = end;
  out["busy"] = busy;
  out["events"] = events;
  return out;
}

}  // namespace

// The simulator's definitions the kernels link against (launch_sim.cpp is not part of this test module).
__gm__ uint8_t* __gm__ GetSysWorkSpacePtr() { return nullptr; }
namespace AscendC {
GM_ADDR GetUserWorkspace(GM_ADDR workspace) { return workspace; }
}  // namespace AscendC
namespace ascend_sim {
void check_kernel_type(KernelMetaType, Loc) {}
}  // namespace ascend_sim

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("run", &run); }

// Purpose-built kernels for the simulator's unit tests: each breaks (or exercises) one hardware rule.
#include <torch/extension.h>

#include <string>

#include "kernel_operator.h"
#include "lib/matmul_intf.h"

using namespace AscendC;

namespace {

// Runs `kernel` as a launch of `cores` cores over the GM buffer `gm` (fp32), re-raising the simulator's error.
void launch(ascend_sim::KernelType type, uint32_t cores, at::Tensor& gm, const std::function<void(float*)>& kernel) {
  ascend_sim::Launch l(type, cores, {{reinterpret_cast<uint8_t*>(gm.data_ptr()), uint64_t(gm.nbytes()), "gm"}}, false);
  float* p = gm.data_ptr<float>();
  l.run([&] { kernel(p); });
}

void ub_capacity(float*) {
  TPipe pipe;
  TBuf<TPosition::VECCALC> a, b;
  pipe.InitBuffer(a, 150 * 1024);
  pipe.InitBuffer(b, 40 * 1024);  // 190 KB > usable UB
}

void l1_capacity(float*) {
  if ASCEND_IS_AIV {
    return;
  }
  TPipe pipe;
  TBuf<TPosition::A1> l1;
  pipe.InitBuffer(l1, 600 * 1024);
}

void matmul_l1(float*) {
  using T = matmul::MatmulType<TPosition::GM, CubeFormat::ND, half>;
  using C = matmul::MatmulType<TPosition::GM, CubeFormat::ND, float>;
  matmul::Matmul<T, T, C> mm;
  TCubeTiling t{1, 128, 128, 128, 128, 128, 128, 128, 128, 128, 64, 16, 16, 1, 1, 1, 1, 0, 0, 1, 1, 1};
  TPipe pipe;
  REGIST_MATMUL_OBJ(&pipe, nullptr, mm, &t);  // depthA1 = depthB1 = 16 base blocks: 512 KB of L1
}

void unaligned(float*) {
  TPipe pipe;
  TBuf<TPosition::VECCALC> buf;
  pipe.InitBuffer(buf, 1024);
  LocalTensor<float> x = buf.Get<float>();
  Adds(x[3], x[3], 1.0f, 16);
}

void copy_length(float* gm) {
  TPipe pipe;
  TBuf<TPosition::VECCALC> buf;
  pipe.InitBuffer(buf, 1024);
  GlobalTensor<float> g;
  g.SetGlobalBuffer(gm, 64);
  DataCopy(buf.Get<float>(), g, 5);  // 20 bytes: not whole 32-byte blocks
}

void repeat_limit(float*) {
  TPipe pipe;
  TBuf<TPosition::VECCALC> buf;
  pipe.InitBuffer(buf, 160 * 1024);
  LocalTensor<float> x = buf.Get<float>();
  Mul(x, x, x, 64, 300, BinaryRepeatParams());
}

void unmatched_set_flag(float*) { SetFlag<HardEvent::MTE2_V>(0); }

void wait_without_set(float*) { WaitFlag<HardEvent::V_MTE3>(1); }

void enque_without_deque(float*) {
  TPipe pipe;
  TQue<TPosition::VECIN, 1> que;
  pipe.InitBuffer(que, 1, 256);
  LocalTensor<float> t = que.AllocTensor<float>();
  que.EnQue(t);
}

void alloc_without_free(float*) {
  TPipe pipe;
  TQue<TPosition::VECOUT, 1> que;
  pipe.InitBuffer(que, 2, 256);
  LocalTensor<float> t = que.AllocTensor<float>();
  que.EnQue(t);
  t = que.DeQue<float>();
}

void gm_out_of_bounds(float* gm) {
  TPipe pipe;
  TBuf<TPosition::VECCALC> buf;
  pipe.InitBuffer(buf, 1024);
  GlobalTensor<float> g;
  g.SetGlobalBuffer(gm, 64);
  DataCopy(g[56], buf.Get<float>(), 16);  // elements 56..71 of a 64-element tensor
}

void gm_outside_buffers(float* gm) {
  GlobalTensor<float> g;
  g.SetGlobalBuffer(gm + 32, 64);  // the host passed 64 elements
}

void cross_core_saturation(float*) {
  if ASCEND_IS_AIC {
    for (int i = 0; i < 16; ++i) CrossCoreSetFlag<2, PIPE_FIX>(3);
  }
}

// Correct kernels whose results the tests check.

// Cross-core handshake and SyncAll: AIC sets flag 1 for both AIVs; each AIV writes its index, all sync, AIV 0 of
// core 0 sums everything into gm[63].
void handshake(float* gm) {
  GlobalTensor<float> g;
  g.SetGlobalBuffer(gm, 64);
  if ASCEND_IS_AIC {
    CrossCoreSetFlag<2, PIPE_FIX>(1);
    return;
  }
  CrossCoreWaitFlag(1);
  g.SetValue(GetBlockIdx(), float(GetBlockIdx() + 1));
  SyncAll();
  if (GetBlockIdx() == 0) {
    float s = 0;
    for (int64_t i = 0; i < 2 * GetBlockNum(); ++i) s += g.GetValue(i);
    g.SetValue(63, s);
  }
}

// Per-row broadcast: rows of x [4, 16] (gm[0..64)) scaled by stats gm[64..68) via Brcb + level-0 Mul; result to
// gm[0..64). Also Cast fp32 -> half with CAST_RINT of gm[68..84) written back as floats to gm[68..84).
void row_broadcast(float* gm) {
  GlobalTensor<float> g;
  g.SetGlobalBuffer(gm, 128);
  TPipe pipe;
  TQue<TPosition::VECIN, 1> in;
  TBuf<TPosition::VECCALC> stat, wide, h;
  pipe.InitBuffer(in, 1, 128 * sizeof(float));
  pipe.InitBuffer(stat, 4 * 8 * sizeof(float));
  pipe.InitBuffer(wide, 8 * 8 * sizeof(float));
  pipe.InitBuffer(h, 16 * sizeof(half));
  LocalTensor<float> x = in.AllocTensor<float>();
  DataCopy(x, g, 128);
  in.EnQue(x);
  x = in.DeQue<float>();
  LocalTensor<float> s = stat.Get<float>(), b = wide.Get<float>();
  Brcb(b, x[64], 1, BrcbRepeatParams(1, 8));  // 8 scalars -> 8 blocks; rows use the first 4
  Mul(x, x, b, 16, 4, BinaryRepeatParams(1, 1, 0, 2, 2, 1));
  LocalTensor<half> y = h.Get<half>();
  Cast(y, x[72], RoundMode::CAST_RINT, 16);
  Cast(x[72], y, RoundMode::CAST_NONE, 16);
  (void)s;
  DataCopy(g, x, 128);
  in.FreeTensor(x);
}

// Compare + Select (gm[0..64) < gm[64..128) ? gm[0..64) : -1), then a level-0 Duplicate writing 7 into lanes
// 3..5 of the result, and Cast of gm[0..16) to half with FLOOR / CEIL / ROUND / TRUNC into gm[128..192).
void select_and_round(float* gm) {
  GlobalTensor<float> g;
  g.SetGlobalBuffer(gm, 192);
  TPipe pipe;
  TBuf<TPosition::VECCALC> a, b, bits, h;
  pipe.InitBuffer(a, 64 * sizeof(float));
  pipe.InitBuffer(b, 64 * sizeof(float));
  pipe.InitBuffer(bits, 32);
  pipe.InitBuffer(h, 16 * sizeof(half));
  LocalTensor<float> x = a.Get<float>(), y = b.Get<float>();
  DataCopy(x, g, 64);
  DataCopy(y, g[64], 64);
  LocalTensor<uint8_t> m = bits.Get<uint8_t>();
  Compare(m, x, y, CMPMODE::LT, 64);
  Select(y, m, x, -1.0f, SELMODE::VSEL_TENSOR_SCALAR_MODE, 64);
  uint64_t lanes[2] = {0b111000, 0};
  Duplicate(y, 7.0f, lanes, 1, 1, 8);
  DataCopy(g[64], y, 64);
  const RoundMode modes[] = {RoundMode::CAST_FLOOR, RoundMode::CAST_CEIL, RoundMode::CAST_ROUND, RoundMode::CAST_TRUNC};
  LocalTensor<half> r = h.Get<half>();
  for (int i = 0; i < 4; ++i) {
    Cast(r, x, modes[i], 16);
    Cast(y, r, RoundMode::CAST_NONE, 16);
    DataCopy(g[128 + 16 * i], y, 16);
  }
}

const std::map<std::string, std::pair<ascend_sim::KernelType, void (*)(float*)>> kKernels = {
    {"ub_capacity", {ascend_sim::KernelType::kAivOnly, ub_capacity}},
    {"l1_capacity", {ascend_sim::KernelType::kMixAic1To2, l1_capacity}},
    {"matmul_l1", {ascend_sim::KernelType::kAivOnly, matmul_l1}},
    {"unaligned", {ascend_sim::KernelType::kAivOnly, unaligned}},
    {"copy_length", {ascend_sim::KernelType::kAivOnly, copy_length}},
    {"repeat_limit", {ascend_sim::KernelType::kAivOnly, repeat_limit}},
    {"unmatched_set_flag", {ascend_sim::KernelType::kAivOnly, unmatched_set_flag}},
    {"wait_without_set", {ascend_sim::KernelType::kAivOnly, wait_without_set}},
    {"enque_without_deque", {ascend_sim::KernelType::kAivOnly, enque_without_deque}},
    {"alloc_without_free", {ascend_sim::KernelType::kAivOnly, alloc_without_free}},
    {"gm_out_of_bounds", {ascend_sim::KernelType::kAivOnly, gm_out_of_bounds}},
    {"gm_outside_buffers", {ascend_sim::KernelType::kAivOnly, gm_outside_buffers}},
    {"cross_core_saturation", {ascend_sim::KernelType::kMixAic1To2, cross_core_saturation}},
    {"handshake", {ascend_sim::KernelType::kMixAic1To2, handshake}},
    {"row_broadcast", {ascend_sim::KernelType::kAivOnly, row_broadcast}},
    {"select_and_round", {ascend_sim::KernelType::kAivOnly, select_and_round}},
};

void run(const std::string& name, at::Tensor gm, int64_t cores) {
  const auto& [type, kernel] = kKernels.at(name);
  launch(type, uint32_t(cores), gm, kernel);
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("run", &run); }

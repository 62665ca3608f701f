// Simulator build of the high-level Matmul API (vector-master use): the AIC side only registers; IterateAll runs
// the GEMM synchronously on the calling AIV thread at GM level (fp16/bf16 in, fp32 accumulation), counting GM
// traffic and cube MACs to that core.
#pragma once
#include <string>
#include <vector>

#include "../kernel_operator.h"
#include "../kernel_tiling/kernel_tiling.h"

enum class CubeFormat { ND, NZ, ND_ALIGN };
enum class LayoutMode { NONE, BSNGD, SBNGD, BNGS1S2, NORMAL };

namespace matmul {

template <AscendC::TPosition POSITION, CubeFormat FORMAT, typename TYPE, bool ISTRANS = false,
          LayoutMode LAYOUT = LayoutMode::NONE, bool IBSHARE = false>
struct MatmulType {
  using T = TYPE;
  static constexpr AscendC::TPosition pos = POSITION;
  static constexpr CubeFormat format = FORMAT;
  static constexpr bool isTrans = ISTRANS;
};

struct MatmulConfig {
  bool doNorm;
  bool doMultiDataLoad;
};
inline constexpr MatmulConfig CFG_NORM{true, false};
inline constexpr MatmulConfig CFG_MDL{false, true};

template <class A_TYPE, class B_TYPE, class C_TYPE, class BIAS_TYPE = C_TYPE, const MatmulConfig& MM_CFG = CFG_NORM>
class Matmul {
  using A = typename A_TYPE::T;
  using B = typename B_TYPE::T;
  using C = typename C_TYPE::T;
  static_assert(C_TYPE::pos == AscendC::TPosition::GM, "the simulator runs Matmul with C in GM");

 public:
  // Checks that the tiling's base blocks fit L0A/L0B/L0C and its L1 depth fits L1, as the cube would need.
  void Init(const TCubeTiling* tiling, AscendC::TPipe* = nullptr, ascend_sim::Loc loc = {}) {
    using namespace ascend_sim;
    const TCubeTiling& t = *tiling;
    check(t.baseM > 0 && t.baseN > 0 && t.baseK > 0 && t.baseM % 16 == 0 && t.baseN % 16 == 0 &&
              t.baseK * sizeof(A) % 32 == 0,
          loc,
          [&] { return "TCubeTiling base block " + shape(t.baseM, t.baseN, t.baseK) + " is not fractal-aligned"; });
    const uint64_t l0a = uint64_t(t.baseM) * t.baseK * sizeof(A) * (t.dbL0A > 1 ? 2 : 1);
    const uint64_t l0b = uint64_t(t.baseK) * t.baseN * sizeof(B) * (t.dbL0B > 1 ? 2 : 1);
    const uint64_t l0c = uint64_t(t.baseM) * t.baseN * sizeof(float) * (t.dbL0C > 1 ? 2 : 1);
    const uint64_t l1 =
        uint64_t(t.depthA1) * t.baseM * t.baseK * sizeof(A) + uint64_t(t.depthB1) * t.baseN * t.baseK * sizeof(B);
    check(l0a <= kL0aBytes && l0b <= kL0bBytes && l0c <= kL0cBytes, loc, [&] {
      return "TCubeTiling base block " + shape(t.baseM, t.baseN, t.baseK) + " needs L0A " + std::to_string(l0a) +
             ", L0B " + std::to_string(l0b) + ", L0C " + std::to_string(l0c) + " bytes: more than L0 holds";
    });
    check(l1 <= kL1UsableBytes, loc, [&] {
      return "TCubeTiling depthA1/depthB1 need " + std::to_string(l1) + " bytes of L1, more than its " +
             std::to_string(kL1UsableBytes);
    });
    tiling_ = tiling;
  }
  void SetOrgShape(int orgM, int orgN, int orgK) { SetOrgShape(orgM, orgN, orgK, orgK, 0); }
  void SetOrgShape(int orgM, int orgN, int orgKa, int orgKb, int orgKc = 0) {
    org_m_ = orgM, org_n_ = orgN, org_ka_ = orgKa, org_kb_ = orgKb, org_kc_ = orgKc ? orgKc : orgN;
  }
  void SetTensorA(const AscendC::GlobalTensor<A>& gm, bool isTransposeA = false, ascend_sim::Loc loc = {}) {
    ascend_sim::check(!isTransposeA || A_TYPE::isTrans, loc,
                      [] { return "SetTensorA(transpose) on a MatmulType declared with isTrans = false"; });
    a_ = gm, trans_a_ = isTransposeA;
  }
  void SetTensorB(const AscendC::GlobalTensor<B>& gm, bool isTransposeB = false, ascend_sim::Loc loc = {}) {
    ascend_sim::check(!isTransposeB || B_TYPE::isTrans, loc,
                      [] { return "SetTensorB(transpose) on a MatmulType declared with isTrans = false"; });
    b_ = gm, trans_b_ = isTransposeB;
  }
  void SetTail(int tailM = -1, int tailN = -1, int tailK = -1) {
    tail_m_ = tailM > 0 ? tailM : tiling_->singleCoreM;
    tail_n_ = tailN > 0 ? tailN : tiling_->singleCoreN;
    tail_k_ = tailK > 0 ? tailK : tiling_->singleCoreK;
  }

  // C[m, n] (+)= A[m, k] * B[k, n] over the tail shape.
  template <bool sync = true>
  void IterateAll(const AscendC::GlobalTensor<C>& gm, uint8_t enAtomic = 0, bool = false, bool = false, bool = false,
                  ascend_sim::Loc loc = {}) {
    using namespace ascend_sim;
    check(tiling_ != nullptr, loc, [] { return "Matmul used before REGIST_MATMUL_OBJ / Init"; });
    const int m = tail_m_ > 0 ? tail_m_ : tiling_->singleCoreM, n = tail_n_ > 0 ? tail_n_ : tiling_->singleCoreN;
    const int k = tail_k_ > 0 ? tail_k_ : tiling_->singleCoreK;
    check(m <= tiling_->singleCoreM && n <= tiling_->singleCoreN && k <= tiling_->singleCoreK, loc, [&] {
      return "Matmul shape " + shape(m, n, k) + " exceeds the tiling's singleCore shape " +
             shape(tiling_->singleCoreM, tiling_->singleCoreN, tiling_->singleCoreK);
    });
    check(m <= org_m_ && n <= org_n_ && k <= org_ka_ && k <= org_kb_, loc,
          [&] { return "Matmul shape " + shape(m, n, k) + " exceeds SetOrgShape"; });
    // Last element each operand touches, checked against its GlobalTensor.
    const uint64_t a_last = trans_a_ ? uint64_t(k - 1) * org_m_ + m - 1 : uint64_t(m - 1) * org_ka_ + k - 1;
    const uint64_t b_last = trans_b_ ? uint64_t(n - 1) * org_kb_ + k - 1 : uint64_t(k - 1) * org_n_ + n - 1;
    const uint64_t c_last = uint64_t(m - 1) * org_kc_ + n - 1;
    a_.check_range(0, a_last + 1, loc);
    b_.check_range(0, b_last + 1, loc);
    gm.check_range(0, c_last + 1, loc);
    auto& counters = *ctx().counters;
    const uint64_t b_passes = (m + uint64_t(tiling_->baseM) * std::max(tiling_->stepM, 1) - 1) /
                              (uint64_t(tiling_->baseM) * std::max(tiling_->stepM, 1));
    a_.count_read(uint64_t(m) * k * sizeof(A));
    b_.count_read(b_passes * uint64_t(k) * n * sizeof(B));
    gm.count_write(uint64_t(m) * n * sizeof(C));
    auto up16 = [](uint64_t x) { return (x + 15) / 16 * 16; };
    counters.cube_macs += up16(m) * up16(n) * up16(k);
    if (dry_run()) return;
    std::vector<float> fa(size_t(m) * k), fb(size_t(k) * n), acc(n);
    const A* pa = a_.GetPhyAddr();
    const B* pb = b_.GetPhyAddr();
    for (int i = 0; i < m; ++i)
      for (int kk = 0; kk < k; ++kk)
        fa[size_t(i) * k + kk] = to_f32(trans_a_ ? pa[size_t(kk) * org_m_ + i] : pa[size_t(i) * org_ka_ + kk]);
    for (int kk = 0; kk < k; ++kk)
      for (int j = 0; j < n; ++j)
        fb[size_t(kk) * n + j] = to_f32(trans_b_ ? pb[size_t(j) * org_kb_ + kk] : pb[size_t(kk) * org_n_ + j]);
    C* pc = gm.GetPhyAddr();
    for (int i = 0; i < m; ++i) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int kk = 0; kk < k; ++kk) {
        const float x = fa[size_t(i) * k + kk];
        const float* row = &fb[size_t(kk) * n];
        for (int j = 0; j < n; ++j) acc[j] += x * row[j];
      }
      C* out = pc + size_t(i) * org_kc_;
      for (int j = 0; j < n; ++j) out[j] = from_f32<C>(enAtomic ? to_f32(out[j]) + acc[j] : acc[j]);
    }
  }
  void WaitIterateAll() {}
  void End() { tail_m_ = tail_n_ = tail_k_ = -1; }

 private:
  static std::string shape(int m, int n, int k) {
    return "(m " + std::to_string(m) + ", n " + std::to_string(n) + ", k " + std::to_string(k) + ")";
  }
  const TCubeTiling* tiling_ = nullptr;
  AscendC::GlobalTensor<A> a_;
  AscendC::GlobalTensor<B> b_;
  bool trans_a_ = false, trans_b_ = false;
  int org_m_ = 0, org_n_ = 0, org_ka_ = 0, org_kb_ = 0, org_kc_ = 0;
  int tail_m_ = -1, tail_n_ = -1, tail_k_ = -1;
};

}  // namespace matmul

namespace AscendC {
using matmul::Matmul;
using matmul::MatmulType;
}  // namespace AscendC

namespace ascend_sim {
inline void regist_matmul_obj(const Loc&, AscendC::TPipe*, GM_ADDR) {}
// Vector-master: the AIVs own the Matmul objects; the AIC has nothing else to do in the simulator.
template <class MM, class... Rest>
void regist_matmul_obj(const Loc& loc, AscendC::TPipe* pipe, GM_ADDR ws, MM& mm, const TCubeTiling* tiling,
                       Rest&&... rest) {
  if (ctx().type == CoreType::kAiv) mm.Init(tiling, pipe, loc);
  regist_matmul_obj(loc, pipe, ws, rest...);
}
}  // namespace ascend_sim

#define REGIST_MATMUL_OBJ(pipe, workspace, ...) \
  ::ascend_sim::regist_matmul_obj(::ascend_sim::Loc(), pipe, workspace, __VA_ARGS__)

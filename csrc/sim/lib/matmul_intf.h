// Simulator build of the high-level Matmul API (vector-master use): the AIC side only registers; IterateAll runs
// the GEMM on the calling AIV thread at GM level (fp16/bf16 in, fp32 accumulation) as an instruction of the AIV's
// Matmul pipe (the cube serving that AIV), recording its GM reads and writes for the race detector and counting GM
// traffic and cube MACs to the core. The result is ordered before the AIV's later instructions only once the call
// is waited for: IterateAll<true>, or IterateAll<false>(..., waitIterateAll = true) then WaitIterateAll.
#pragma once
#include <string>
#include <vector>

#include "../kernel_operator.h"
#include "../kernel_tiling/kernel_tiling.h"

enum class CubeFormat { ND = 0, NZ, ZN, ZZ, NN, ND_ALIGN, SCALAR, VECTOR, ROW_MAJOR = ND, COLUMN_MAJOR = 8 };
enum class LayoutMode { NONE = 0, BSNGD, SBNGD, BNGS1S2, NORMAL };

// The Matmul API's compile-time configuration: the devkit's leading members in their order (matmul_config.h); the
// simulator reads none of them.
struct MatmulConfig {
  bool doNorm;
  bool doBasicBlock;
  bool doMultiDataLoad;
  uint32_t basicM, basicN, basicK;
  bool intrinsicsCheck, isNBatch, enVecND2NZ, doSpecialBasicBlock;
};
inline constexpr MatmulConfig CFG_NORM{true, false, false, 0, 0, 0, false, false, false, false};
inline constexpr MatmulConfig CFG_MDL{false, false, true, 0, 0, 0, false, false, false, false};

namespace AscendC {

template <TPosition POSITION, CubeFormat FORMAT, typename TYPE, bool ISTRANS = false,
          LayoutMode LAYOUT = LayoutMode::NONE, bool IBSHARE = false, TPosition SRCPOS = TPosition::GM>
struct MatmulType {
  constexpr static TPosition pos = POSITION;
  constexpr static CubeFormat format = FORMAT;
  using T = TYPE;
  constexpr static bool isTrans = ISTRANS;
  constexpr static LayoutMode layout = LAYOUT;
  constexpr static bool ibShare = IBSHARE;
  constexpr static TPosition srcPos = SRCPOS;
};

template <class A_TYPE, class B_TYPE, class C_TYPE, class BIAS_TYPE = C_TYPE, const auto& MM_CFG = CFG_NORM>
class Matmul {
  using A = typename A_TYPE::T;
  using B = typename B_TYPE::T;
  using C = typename C_TYPE::T;
  static_assert(C_TYPE::pos == AscendC::TPosition::GM, "the simulator runs Matmul with C in GM");

 public:
  Matmul() = default;
  Matmul(const Matmul&) = delete;
  ~Matmul() noexcept(false) {
    if (std::uncaught_exceptions() == 0 && waiting_) {
      ascend_sim::fail(async_loc_, "IterateAll<false> with waitIterateAll = true was never waited (WaitIterateAll)");
    }
  }

  // Checks the tiling against the constraints every valid TCubeTiling meets (TCubeTiling结构体.md, table 2): positive
  // shapes, fractal-aligned base blocks that fit L0A/L0B/L0C with their double buffers, L1 depths equal to
  // step x step x (1 or 2) that fit L1, and flags with their documented values.
  void Init(const TCubeTiling* __restrict cubeTiling, AscendC::TPipe* tpipe = nullptr, ascend_sim::Loc loc = {}) {
    using namespace ascend_sim;
    (void)tpipe;
    const TCubeTiling& t = *cubeTiling;
    check(t.usedCoreNum >= 1 && t.singleCoreM > 0 && t.singleCoreN > 0 && t.singleCoreK > 0 && t.stepM > 0 &&
              t.stepN > 0 && t.stepKa > 0 && t.stepKb > 0 && t.depthA1 > 0 && t.depthB1 > 0,
          loc, [] { return "TCubeTiling: usedCoreNum, singleCore*, step* and depth*1 must all be > 0"; });
    check(t.baseM > 0 && t.baseN > 0 && t.baseK > 0 && t.baseM % 16 == 0 && t.baseN % 16 == 0 && t.baseK % 16 == 0, loc,
          [&] { return "TCubeTiling base block " + shape(t.baseM, t.baseN, t.baseK) + " is not fractal-aligned"; });
    auto one_or_two = [](int32_t x) { return x == 1 || x == 2; };
    check(one_or_two(t.dbL0A) && one_or_two(t.dbL0B) && one_or_two(t.dbL0C) && (t.isBias == 0 || t.isBias == 1) &&
              (t.iterateOrder == 0 || t.iterateOrder == 1),
          loc, [] { return "TCubeTiling: dbL0A/dbL0B/dbL0C must be 1 or 2, isBias and iterateOrder 0 or 1"; });
    auto depth_ok = [&](int32_t depth, int32_t a, int32_t b) { return depth == a * b || depth == 2 * a * b; };
    check(depth_ok(t.depthA1, t.stepM, t.stepKa) && depth_ok(t.depthB1, t.stepN, t.stepKb), loc, [&] {
      return "TCubeTiling depthA1 " + std::to_string(t.depthA1) + " / depthB1 " + std::to_string(t.depthB1) +
             " are not stepM x stepKa / stepN x stepKb times 1 or 2";
    });
    const uint64_t l0a = uint64_t(t.baseM) * t.baseK * sizeof(A) * t.dbL0A;
    const uint64_t l0b = uint64_t(t.baseK) * t.baseN * sizeof(B) * t.dbL0B;
    const uint64_t l0c = uint64_t(t.baseM) * t.baseN * sizeof(float) * t.dbL0C;
    check(l0a < kL0aBytes && l0b < kL0bBytes && l0c < kL0cBytes, loc, [&] {
      return "TCubeTiling base block " + shape(t.baseM, t.baseN, t.baseK) + " needs L0A " + std::to_string(l0a) +
             ", L0B " + std::to_string(l0b) + ", L0C " + std::to_string(l0c) + " bytes: more than L0 holds";
    });
    const uint64_t l1 =
        uint64_t(t.depthA1) * t.baseM * t.baseK * sizeof(A) + uint64_t(t.depthB1) * t.baseN * t.baseK * sizeof(B);
    check(l1 <= kL1UsableBytes, loc, [&] {
      return "TCubeTiling depthA1/depthB1 need " + std::to_string(l1) + " bytes of L1, more than its " +
             std::to_string(kL1UsableBytes);
    });
    tiling_ = cubeTiling;
  }
  void SetOrgShape(int orgM, int orgN, int orgK, ascend_sim::Loc loc = {}) {
    SetOrgShape(orgM, orgN, orgK, orgK, orgN, loc);
  }
  void SetOrgShape(int orgM, int orgN, int orgKa, int orgKb, int orgKc = 0, ascend_sim::Loc loc = {}) {
    use(loc);
    org_m_ = orgM, org_n_ = orgN, org_ka_ = orgKa, org_kb_ = orgKb, org_kc_ = orgKc ? orgKc : orgN;
    org_set_ = true;
  }
  void SetTensorA(const AscendC::GlobalTensor<A>& gm, bool isTransposeA = false, ascend_sim::Loc loc = {}) {
    use(loc);
    ascend_sim::check(org_set_, loc, [] { return "SetTensorA before SetOrgShape"; });
    ascend_sim::check(!isTransposeA || A_TYPE::isTrans, loc,
                      [] { return "SetTensorA(transpose) on a MatmulType declared with isTrans = false"; });
    a_ = gm, trans_a_ = isTransposeA;
  }
  void SetTensorB(const AscendC::GlobalTensor<B>& gm, bool isTransposeB = false, ascend_sim::Loc loc = {}) {
    use(loc);
    ascend_sim::check(org_set_, loc, [] { return "SetTensorB before SetOrgShape"; });
    ascend_sim::check(!isTransposeB || B_TYPE::isTrans, loc,
                      [] { return "SetTensorB(transpose) on a MatmulType declared with isTrans = false"; });
    b_ = gm, trans_b_ = isTransposeB;
  }
  void SetTail(int tailM = -1, int tailN = -1, int tailK = -1) {
    tail_m_ = tailM > 0 ? tailM : tiling_->singleCoreM;
    tail_n_ = tailN > 0 ? tailN : tiling_->singleCoreN;
    tail_k_ = tailK > 0 ? tailK : tiling_->singleCoreK;
  }

  // C[m, n] (+)= A[m, k] * B[k, n] over the tail shape, by the cube of this core on behalf of the calling AIV. With
  // sync = false the call returns at once and C is the AIV's to read only after WaitIterateAll (with
  // waitIterateAll = true; IterateAll.md, WaitIterateAll.md). enAtomic = 1 adds C to what GM holds, as an atomic add
  // (commutes with other atomic adds, in no defined order; conflicts with plain accesses: 原子操作/关键特性说明.md);
  // 2 and 3 (AtomicMax / AtomicMin) are documented but not simulated, so they are rejected.
  template <bool sync = true>
  void IterateAll(const AscendC::GlobalTensor<C>& gm, uint8_t enAtomic = 0, bool enSequentialWrite = false,
                  bool waitIterateAll = false, bool fakeMsg = false, ascend_sim::Loc loc = {}) {
    using namespace ascend_sim;
    (void)enSequentialWrite, (void)fakeMsg;
    use(loc);
    check(tiling_ != nullptr, loc, [] { return "Matmul used before REGIST_MATMUL_OBJ / Init"; });
    check(enAtomic <= 1, loc, [&] {
      return "IterateAll enAtomic " + std::to_string(enAtomic) +
             ": the simulator has 0 (none) and 1 (AtomicAdd); 2 (AtomicMax) and 3 (AtomicMin) are not simulated "
             "(IterateAll.md)";
    });
    check(!waiting_, loc,
          [&] { return "IterateAll while the IterateAll<false> at " + where(async_loc_) + " is unwaited"; });
    const int m = tail_m_ > 0 ? tail_m_ : tiling_->singleCoreM, n = tail_n_ > 0 ? tail_n_ : tiling_->singleCoreN;
    const int k = tail_k_ > 0 ? tail_k_ : tiling_->singleCoreK;
    check(m <= tiling_->singleCoreM && n <= tiling_->singleCoreN && k <= tiling_->singleCoreK, loc, [&] {
      return "Matmul shape " + shape(m, n, k) + " exceeds the tiling's singleCore shape " +
             shape(tiling_->singleCoreM, tiling_->singleCoreN, tiling_->singleCoreK);
    });
    check(m <= org_m_ && n <= org_n_ && k <= org_ka_ && k <= org_kb_, loc,
          [&] { return "Matmul shape " + shape(m, n, k) + " exceeds SetOrgShape"; });
    {  // the request is timed when this scope closes; a synchronous call waits for it after that
      Instr in(Pipe::kMm, loc, sync ? "IterateAll" : "IterateAll<false>");
      const Access& a = in.access();
      // Rows each operand touches: recorded (race detector, data cache) and counted.
      for (int r = 0; r < (trans_a_ ? k : m); ++r)
        a_.sim_access(uint64_t(r) * (trans_a_ ? org_m_ : org_ka_), trans_a_ ? m : k, false, a);
      for (int r = 0; r < (trans_b_ ? n : k); ++r)
        b_.sim_access(uint64_t(r) * (trans_b_ ? org_kb_ : org_n_), trans_b_ ? k : n, false, a);
      const AccessKind c_kind = enAtomic ? AccessKind::kAtomicAdd : AccessKind::kWrite;
      for (int r = 0; r < m; ++r) gm.sim_access(uint64_t(r) * org_kc_, n, c_kind, a);
      auto& counters = *ctx().counters;
      const uint64_t b_passes = (m + uint64_t(tiling_->baseM) * std::max(tiling_->stepM, 1) - 1) /
                                (uint64_t(tiling_->baseM) * std::max(tiling_->stepM, 1));
      counters.gm_read_bytes += (b_passes - 1) * uint64_t(k) * n * sizeof(B);  // B again for every further M block
      in.add_gm((b_passes - 1) * uint64_t(k) * n * sizeof(B), 0);  // ... from L2, where the first pass left it
      auto up16 = [](uint64_t x) { return (x + 15) / 16 * 16; };
      counters.cube_macs += up16(m) * up16(n) * up16(k);
      in.add_macs(up16(m) * up16(n) * up16(k));
      // L1 -> L0A / L0B: A once per base block of N, B once per base block of M (fractal-padded shapes).
      const uint64_t n_blocks = (n + tiling_->baseN - 1) / tiling_->baseN,
                     m_blocks = (m + tiling_->baseM - 1) / tiling_->baseM;
      in.add_cycles(double(up16(m) * up16(k) * sizeof(A) * n_blocks) / kModelL0aLoadBytesPerCycle +
                    double(up16(k) * up16(n) * sizeof(B) * m_blocks) / kModelL0bLoadBytesPerCycle);
      if (!dry_run()) compute(gm, m, n, k, enAtomic);
    }
    if (sync) {
      complete();
    } else if (waitIterateAll) {
      waiting_ = true;
      async_loc_ = loc;
    }
  }
  void WaitIterateAll(ascend_sim::Loc loc = {}) {
    ascend_sim::check(waiting_, loc, [] {
      return "WaitIterateAll with no IterateAll<false>(..., waitIterateAll = true) before it (WaitIterateAll.md)";
    });
    waiting_ = false;
    complete();
  }
  // Releases the cube for another Matmul object (End.md: required between objects).
  void End(ascend_sim::Loc loc = {}) {
    ascend_sim::check(!waiting_, loc, [&] {
      return "End with the IterateAll<false> at " + ascend_sim::where(async_loc_) + " unwaited";
    });
    ascend_sim::ThreadCtx& c = ascend_sim::ctx();
    if (c.matmul_active == this) c.matmul_active = nullptr;
    tail_m_ = tail_n_ = tail_k_ = -1;
  }

 private:
  static std::string shape(int m, int n, int k) {
    return "(m " + std::to_string(m) + ", n " + std::to_string(n) + ", k " + std::to_string(k) + ")";
  }
  // This object takes the cube; another one must have called End first.
  void use(const ascend_sim::Loc& loc) {
    ascend_sim::ThreadCtx& c = ascend_sim::ctx();
    ascend_sim::check(c.matmul_active == nullptr || c.matmul_active == this, loc, [] {
      return "a second Matmul object used without End() on the first (End.md: call End between Matmul objects)";
    });
    c.matmul_active = this;
  }
  // The AIV waits for the cube: what the request read and wrote is ordered before its next instructions.
  static void complete() {
    ascend_sim::ThreadCtx& c = ascend_sim::ctx();
    c.sync.wait(ascend_sim::Pipe::kS, c.sync.completion(ascend_sim::Pipe::kMm));
    c.times.s = std::max(c.times.s, c.times.done[size_t(ascend_sim::Pipe::kMm)]);
  }
  void compute(const AscendC::GlobalTensor<C>& gm, int m, int n, int k, uint8_t atomic) const {
    using ascend_sim::to_f32;
    std::vector<float> fa(size_t(m) * k), fb(size_t(k) * n), acc(n);
    const A* pa = a_.sim_data();
    const B* pb = b_.sim_data();
    for (int i = 0; i < m; ++i)
      for (int kk = 0; kk < k; ++kk)
        fa[size_t(i) * k + kk] = to_f32(trans_a_ ? pa[size_t(kk) * org_m_ + i] : pa[size_t(i) * org_ka_ + kk]);
    for (int kk = 0; kk < k; ++kk)
      for (int j = 0; j < n; ++j)
        fb[size_t(kk) * n + j] = to_f32(trans_b_ ? pb[size_t(j) * org_kb_ + kk] : pb[size_t(kk) * org_n_ + j]);
    C* pc = gm.sim_data();
    for (int i = 0; i < m; ++i) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int kk = 0; kk < k; ++kk) {
        const float x = fa[size_t(i) * k + kk];
        const float* row = &fb[size_t(kk) * n];
        for (int j = 0; j < n; ++j) acc[j] += x * row[j];
      }
      C* out = pc + size_t(i) * org_kc_;
      for (int j = 0; j < n; ++j) out[j] = ascend_sim::from_f32<C>(atomic ? to_f32(out[j]) + acc[j] : acc[j]);
    }
  }
  const TCubeTiling* tiling_ = nullptr;
  AscendC::GlobalTensor<A> a_;
  AscendC::GlobalTensor<B> b_;
  bool trans_a_ = false, trans_b_ = false, org_set_ = false, waiting_ = false;
  ascend_sim::Loc async_loc_;
  int org_m_ = 0, org_n_ = 0, org_ka_ = 0, org_kb_ = 0, org_kc_ = 0;
  int tail_m_ = -1, tail_n_ = -1, tail_k_ = -1;
};

}  // namespace AscendC

// As in the devkit, `matmul` names the same namespace (matmul::Matmul is AscendC::Matmul).
namespace matmul = AscendC;

namespace ascend_sim {
inline void regist_matmul_obj(const Loc&, int, AscendC::TPipe*, GM_ADDR) {}
// Vector-master: the AIVs own the Matmul objects; the AIC serves their requests (modelled on the AIV's Matmul pipe).
template <class MM, class... Rest>
void regist_matmul_obj(const Loc& loc, int count, AscendC::TPipe* pipe, GM_ADDR ws, MM& mm, const TCubeTiling* tiling,
                       Rest&&... rest) {
  if (ctx().type == CoreType::kAiv) mm.Init(tiling, pipe, loc);
  regist_matmul_obj(loc, count, pipe, ws, rest...);
}
// REGIST_MATMUL_OBJ(pipe, workspace, mm1, tiling1, ...): before any InitBuffer, at most 4 objects, whose cross-core
// flag ids (0..2n-1) are then reserved (REGIST_MATMUL_OBJ.md).
template <class... Args>
void regist_matmul_objs(const Loc& loc, AscendC::TPipe* pipe, GM_ADDR ws, Args&&... args) {
  constexpr int count = int(sizeof...(Args)) / 2;
  static_assert(count >= 1 && count <= 4, "REGIST_MATMUL_OBJ takes 1 to 4 Matmul objects with their tilings");
  ThreadCtx& c = ctx();
  check(!c.init_buffer_called, loc, [] {
    return "REGIST_MATMUL_OBJ after InitBuffer: on the separated AIC/AIV architecture it must come first "
           "(REGIST_MATMUL_OBJ.md)";
  });
  c.matmul_objects = count;
  c.launch->note_matmul_objects(count);
  regist_matmul_obj(loc, count, pipe, ws, args...);
}
}  // namespace ascend_sim

// Like the devkit's, a block of statements: it declares a name (so two in one scope do not compile) and returns on
// the AIC, whose part of a vector-master kernel is serving the AIVs' requests.
#define REGIST_MATMUL_OBJ(pipe, workspace, ...)                                        \
  [[maybe_unused]] constexpr bool ascend_sim_matmul_objects_registered = true;         \
  ::ascend_sim::regist_matmul_objs(::ascend_sim::Loc(), pipe, workspace, __VA_ARGS__); \
  if (::ascend_sim::ctx().type == ::ascend_sim::CoreType::kAic) return

// What every part of the simulator shares: call-site locations, the error a violated rule raises, and the kinds of
// cores, pipes and memories.
#pragma once
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

namespace ascend_sim {

// Where a kernel called a simulated API: filled at the call site through default arguments. The tag parameter
// keeps a literal 0 or nullptr from converting to a Loc, so the extra trailing parameter never swallows a real
// argument of the API.
struct Loc {
  struct Here {};
  const char* file;
  int line;
  Loc(Here = Here(), const char* f = __builtin_FILE(), int l = __builtin_LINE()) : file(f), line(l) {}
};
std::string where(const Loc& loc);  // "file.h:123"

// Thrown inside a kernel thread when a rule is violated; the launch turns it into one error for the host.
struct SimError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const Loc& loc, const std::string& message);
inline void check(bool ok, const Loc& loc, const std::function<std::string()>& message) {
  if (!ok) fail(loc, message());
}

// KERNEL_TYPE_AIV_ONLY / AIC_ONLY start no scheduling module (no cross-core sync); MIX_AIV_1_0 is the vector-only
// kernel that has one (CrossCoreSetFlag(ISASI).md, 约束说明).
enum class KernelType { kAivOnly, kAicOnly, kMixAic1To2, kMixAiv1To0 };
enum class CoreType { kAic, kAiv };

// The pipes of an AI core (pipe_t), plus kMm: the cube work a vector-master Matmul request runs on behalf of one AIV
// (the AIC's MTE2/MTE1/M/FIX, serialized per request, modelled as one pipe of the requesting AIV).
enum class Pipe : uint8_t { kS, kV, kM, kMte1, kMte2, kMte3, kFix, kMm };
constexpr uint32_t kPipeCount = 8;
const char* pipe_name(Pipe p);

// How a kernel uses a GM buffer the host passed: kInput is only read; kOutput is written (the simulator poisons it
// before the launch); kInOut is read and written (caches, flags the host initialised); kScratch is workspace the
// kernel owns (poisoned).
enum class GmRole : uint8_t { kInput, kOutput, kInOut, kScratch };

// Local memory kinds with their own per-thread arena.
enum class Memory { kUb, kL1, kL0a, kL0b, kL0c };
const char* memory_name(Memory m);

}  // namespace ascend_sim

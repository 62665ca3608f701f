#include "sim_runtime.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <sstream>
#include <thread>

namespace ascend_sim {

namespace {
thread_local ThreadCtx* t_ctx = nullptr;

const char* basename_of(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

uint32_t thread_index(const ThreadCtx& c) { return c.type == CoreType::kAic ? c.core : 2 * c.core + c.sub; }

std::string describe(const ThreadCtx& c) {
  std::ostringstream s;
  s << (c.type == CoreType::kAic ? "AIC " : "AIV ") << thread_index(c);
  return s.str();
}
}  // namespace

[[noreturn]] void fail(const Loc& loc, const std::string& message) {
  std::ostringstream s;
  s << "Ascend C simulator: " << message << " (at " << basename_of(loc.file) << ":" << loc.line;
  if (t_ctx) s << ", " << describe(*t_ctx);
  s << ")";
  throw SimError(s.str());
}

ThreadCtx& ctx() {
  if (!t_ctx) throw SimError("Ascend C simulator: a kernel API was called outside a simulated launch");
  return *t_ctx;
}

bool dry_run() { return ctx().launch->is_dry_run(); }

Launch::Launch(KernelType type, uint32_t block_dim, std::vector<GmBuffer> buffers, bool dry_run)
    : type_(type), block_dim_(block_dim), buffers_(std::move(buffers)), dry_run_(dry_run), counters_(block_dim) {}

const GmBuffer* Launch::find_buffer(const void* p, uint64_t bytes) const {
  auto* b = static_cast<const uint8_t*>(p);
  for (const GmBuffer& buf : buffers_) {
    if (b >= buf.base && b + bytes <= buf.base + buf.bytes) return &buf;
  }
  return nullptr;
}

void Launch::record_failure(const std::string& message) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!failed_) {
    failed_ = true;
    failure_ = message;
  }
  cv_.notify_all();
}

void Launch::wait_or_abort(std::unique_lock<std::mutex>& lock, const std::function<bool()>& ready) {
  cv_.wait(lock, [&] { return failed_ || ready(); });
  if (failed_) throw SimError("");  // released because another thread failed; its message is the one reported
}

void Launch::run(const std::function<void()>& kernel) {
  std::vector<std::unique_ptr<ThreadCtx>> contexts;
  for (uint32_t core = 0; core < block_dim_; ++core) {
    auto add = [&](CoreType t, uint32_t sub) {
      auto c = std::make_unique<ThreadCtx>();
      c->launch = this;
      c->type = t;
      c->core = core;
      c->sub = sub;
      c->counters = &counters_[core];
      const bool aic = t == CoreType::kAic;
      c->arenas[int(Memory::kUb)].capacity = aic ? 0 : kUbUsableBytes;
      c->arenas[int(Memory::kL1)].capacity = aic ? kL1UsableBytes : 0;
      c->arenas[int(Memory::kL0a)].capacity = aic ? kL0aBytes : 0;
      c->arenas[int(Memory::kL0b)].capacity = aic ? kL0bBytes : 0;
      c->arenas[int(Memory::kL0c)].capacity = aic ? kL0cBytes : 0;
      contexts.push_back(std::move(c));
    };
    if (type_ != KernelType::kAivOnly) add(CoreType::kAic, 0);
    if (type_ == KernelType::kMixAic1To2) add(CoreType::kAiv, 0), add(CoreType::kAiv, 1);
    if (type_ == KernelType::kAivOnly) add(CoreType::kAiv, 0);
  }
  barrier_expected_ = uint32_t(contexts.size());
  std::vector<std::thread> threads;
  threads.reserve(contexts.size());
  for (auto& c : contexts) {
    threads.emplace_back([this, &kernel, c = c.get()] {
      t_ctx = c;
      try {
        kernel();
        for (const auto& [key, pending] : c->pipe_flags) {
          if (pending != 0) {
            std::ostringstream s;
            s << (pending > 0 ? "SetFlag without a matching WaitFlag" : "WaitFlag without a prior SetFlag")
              << " for event " << key.first << " id " << key.second << " at kernel exit";
            fail(c->last_flag_loc, s.str());
          }
        }
      } catch (const SimError& e) {
        if (e.what()[0]) record_failure(e.what());
      } catch (const std::exception& e) {
        record_failure(std::string("Ascend C simulator: ") + e.what());
      }
      {
        // A finished thread no longer takes part in SyncAll barriers.
        std::lock_guard<std::mutex> lock(mutex_);
        --barrier_expected_;
        if (barrier_expected_ > 0 && barrier_arrived_ == barrier_expected_) {
          barrier_arrived_ = 0;
          ++barrier_generation_;
        }
        cv_.notify_all();
      }
      t_ctx = nullptr;
    });
  }
  for (auto& t : threads) t.join();
  if (failed_) throw SimError(failure_);
}

void Launch::sync_all(const Loc& loc) {
  std::unique_lock<std::mutex> lock(mutex_);
  const uint64_t generation = barrier_generation_;
  if (++barrier_arrived_ == barrier_expected_) {
    barrier_arrived_ = 0;
    ++barrier_generation_;
    cv_.notify_all();
    return;
  }
  wait_or_abort(lock, [&] { return barrier_generation_ != generation; });
}

int64_t& Launch::semaphore(CoreType type, uint32_t thread_index, int flag_id) {
  return semaphores_[{int(type), thread_index, flag_id}];
}

// Modes (Ascend C CrossCoreSetFlag): 0 all cores of the caller's type, 1 the two AIVs of one core, 2 AIC <-> AIV of
// one core (an AIC set releases both AIVs; an AIV set counts once towards its AIC).
void Launch::cross_core_set(int mode, int flag_id, const Loc& loc) {
  ThreadCtx& c = ctx();
  check(flag_id >= 0 && uint32_t(flag_id) <= kMaxCrossCoreFlagId, loc, [&] {
    return "CrossCoreSetFlag flag id " + std::to_string(flag_id) + " outside 0.." + std::to_string(kMaxCrossCoreFlagId);
  });
  check(mode >= 0 && mode <= 2, loc,
        [&] { return "CrossCoreSetFlag mode " + std::to_string(mode) + " is not 0, 1 or 2"; });
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::pair<CoreType, uint32_t>> targets;
  if (mode == 0) {
    const uint32_t n = c.type == CoreType::kAic ? block_dim_ : (type_ == KernelType::kMixAic1To2 ? 2 : 1) * block_dim_;
    for (uint32_t i = 0; i < n; ++i) targets.push_back({c.type, i});
  } else if (mode == 1) {
    check(c.type == CoreType::kAiv, loc, [] { return "CrossCoreSetFlag mode 1 is for the two AIVs of a core"; });
    targets.push_back({CoreType::kAiv, 2 * c.core + (1 - c.sub)});
  } else if (c.type == CoreType::kAic) {
    targets.push_back({CoreType::kAiv, 2 * c.core}), targets.push_back({CoreType::kAiv, 2 * c.core + 1});
  } else {
    targets.push_back({CoreType::kAic, c.core});
  }
  for (auto [type, index] : targets) {
    int64_t& s = semaphore(type, index, flag_id);
    check(s < int64_t(kMaxCrossCorePending), loc, [&] {
      return "CrossCoreSetFlag id " + std::to_string(flag_id) + " has more than " +
             std::to_string(kMaxCrossCorePending) + " pending sets (the hardware counter saturates)";
    });
    ++s;
  }
  cv_.notify_all();
}

void Launch::cross_core_wait(int flag_id, const Loc& loc) {
  ThreadCtx& c = ctx();
  check(flag_id >= 0 && uint32_t(flag_id) <= kMaxCrossCoreFlagId, loc,
        [&] { return "CrossCoreWaitFlag flag id " + std::to_string(flag_id) + " out of range"; });
  std::unique_lock<std::mutex> lock(mutex_);
  int64_t& s = semaphore(c.type, thread_index(c), flag_id);
  wait_or_abort(lock, [&] { return s > 0; });
  --s;
}

ModelledTime model_time(const std::vector<CoreCounters>& counters, uint32_t cores_in_model) {
  ModelledTime m;
  const double gm_per_core = kModelGmBytesPerSecond / std::max<uint32_t>(cores_in_model, 1);
  double worst = 0.0;
  for (const CoreCounters& c : counters) {
    const double cube = double(c.cube_macs) / (kModelCubeMacsPerCycle * kModelClockHz);
    const double vec = double(c.vector_cycles) / (kModelAivPerCore * kModelClockHz);
    const double gm = double(c.gm_read_bytes + c.gm_write_bytes) / gm_per_core;
    const double t = std::max({cube, vec, gm});
    m.core_us.push_back(t * 1e6);
    m.bound.push_back(t == 0.0 ? "idle" : t == cube ? "cube" : t == vec ? "vector" : "gm");
    worst = std::max(worst, t);
  }
  m.us = worst * 1e6 + kModelLaunchOverheadUs;
  return m;
}

}  // namespace ascend_sim

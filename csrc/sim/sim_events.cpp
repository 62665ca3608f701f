#include "sim_events.h"

namespace ascend_sim {

namespace {

struct EventInfo {
  const char* name;
  EventPipes pipes;
};

constexpr Pipe S = Pipe::kS, V = Pipe::kV, M = Pipe::kM, MTE1 = Pipe::kMte1, MTE2 = Pipe::kMte2, MTE3 = Pipe::kMte3,
               FIX = Pipe::kFix;

// Which core type has each event on dav-2201 (kernel_event.h: EventToIndexAiv / EventToIndexAic); the events between
// the cube's and the vector's pipes exist on no A2 core, since AIC and AIV are separate cores there.
const EventInfo kEvents[] = {
    {"MTE2_MTE1", {MTE2, MTE1, false, true}},
    {"MTE1_MTE2", {MTE1, MTE2, false, true}},
    {"MTE1_M", {MTE1, M, false, true}},
    {"M_MTE1", {M, MTE1, false, true}},
    {"MTE2_V", {MTE2, V, true, false}},
    {"V_MTE2", {V, MTE2, true, false}},
    {"MTE3_V", {MTE3, V, true, false}},
    {"V_MTE3", {V, MTE3, true, false}},
    {"M_V", {M, V, false, false}},
    {"V_M", {V, M, false, false}},
    {"V_V", {V, V, true, false}},
    {"MTE3_MTE1", {MTE3, MTE1, false, true}},
    {"MTE1_MTE3", {MTE1, MTE3, false, true}},
    {"MTE1_V", {MTE1, V, false, false}},
    {"MTE2_M", {MTE2, M, false, true}},
    {"M_MTE2", {M, MTE2, false, true}},
    {"V_MTE1", {V, MTE1, false, false}},
    {"M_FIX", {M, FIX, false, true}},
    {"FIX_M", {FIX, M, false, true}},
    {"MTE3_MTE2", {MTE3, MTE2, true, true}},
    {"MTE2_MTE3", {MTE2, MTE3, true, true}},
    {"S_V", {S, V, true, false}},
    {"V_S", {V, S, true, false}},
    {"S_MTE2", {S, MTE2, true, true}},
    {"MTE2_S", {MTE2, S, true, true}},
    {"S_MTE3", {S, MTE3, true, true}},
    {"MTE3_S", {MTE3, S, true, true}},
    {"MTE2_FIX", {MTE2, FIX, false, true}},
    {"FIX_MTE2", {FIX, MTE2, false, true}},
    {"FIX_S", {FIX, S, false, true}},
    {"M_S", {M, S, false, true}},
    {"FIX_MTE3", {FIX, MTE3, false, true}},
    {"MTE1_FIX", {MTE1, FIX, false, true}},
    {"FIX_MTE1", {FIX, MTE1, false, true}},
    {"FIX_FIX", {FIX, FIX, false, true}},
};
static_assert(sizeof(kEvents) / sizeof(kEvents[0]) == size_t(HardEvent::MAX), "one entry per HardEvent");

const EventInfo& info(HardEvent e, const Loc& loc) {
  check(e < HardEvent::MAX, loc, [] { return "HardEvent::MAX is not an event"; });
  return kEvents[size_t(e)];
}

std::string flag_text(HardEvent e, int id) {
  return std::string("<HardEvent::") + kEvents[size_t(e)].name + ">(" + std::to_string(id) + ")";
}

// The event exists on this core type and the id is in range.
void check_event(ThreadCtx& c, HardEvent e, int id, const Loc& loc, const char* api) {
  const EventInfo& ev = info(e, loc);
  const bool aiv = c.type == CoreType::kAiv;
  check(aiv ? ev.pipes.aiv : ev.pipes.aic, loc, [&] {
    return std::string(api) + "<HardEvent::" + ev.name + ">: no such event on the " + (aiv ? "AIV" : "AIC") +
           " of Atlas A2 (kernel_event.h); AIC and AIV synchronise with CrossCoreSetFlag/WaitFlag";
  });
  check(id >= 0 && id < kEventIds, loc,
        [&] { return std::string(api) + flag_text(e, id) + ": event ids are 0..7 (SetFlag-WaitFlag(ISASI).md)"; });
}

// A kernel's own SetFlag/WaitFlag must use an id the TPipe gave it: the TQue operations take ids from the same pool,
// so a hard-coded one collides with them (SetFlag-WaitFlag(ISASI).md, 约束说明).
void check_kernel_id(ThreadCtx& c, HardEvent e, int id, const Loc& loc, const char* api) {
  const uint8_t bit = uint8_t(1u << id);
  if (c.tpipes == 0) {
    check(id < 6, loc, [&] {
      return std::string(api) + flag_text(e, id) +
             ": event ids 6 and 7 are reserved (6 for the system, 7 for auto-sync; SetFlag-WaitFlag(ISASI).md)";
    });
    return;
  }
  check(!(c.ids_by_queue[int(e)] & bit), loc, [&] {
    return std::string(api) + flag_text(e, id) +
           ": the id belongs to a TQue operation in flight (EnQue/FreeTensor took it from the TPipe); take ids "
           "from TPipe::AllocEventID or FetchEventID";
  });
  check((c.ids_held[int(e)] & bit) || (c.ids_fetched[int(e)] & bit), loc, [&] {
    return std::string(api) + flag_text(e, id) +
           ": with a TPipe, event ids must come from TPipe::AllocEventID or FetchEventID (the TPipe owns them; a "
           "hard-coded id collides with its TQue events: SetFlag-WaitFlag(ISASI).md)";
  });
}

}  // namespace

Pipe to_pipe(pipe_t p) {
  switch (p) {
    case PIPE_S:
      return Pipe::kS;
    case PIPE_V:
      return Pipe::kV;
    case PIPE_M:
      return Pipe::kM;
    case PIPE_MTE1:
      return Pipe::kMte1;
    case PIPE_MTE2:
      return Pipe::kMte2;
    case PIPE_MTE3:
      return Pipe::kMte3;
    case PIPE_FIX:
      return Pipe::kFix;
    default:
      throw SimError("Ascend C simulator: PIPE_ALL is not a single pipe");
  }
}

EventPipes event_pipes(HardEvent e) { return kEvents[size_t(e)].pipes; }
std::string event_name(HardEvent e) { return kEvents[size_t(e)].name; }

void set_flag(HardEvent e, int id, const Loc& loc, bool by_queue) {
  ThreadCtx& c = ctx();
  check_event(c, e, id, loc, "SetFlag");
  if (!by_queue) check_kernel_id(c, e, id, loc, "SetFlag");
  c.launch->yield();
  const auto key = std::make_pair(int(e), id);
  auto it = c.flags.find(key);
  check(it == c.flags.end(), loc, [&] {
    return "SetFlag" + flag_text(e, id) + " twice without a WaitFlag between (first at " + where(it->second.loc) +
           "): undefined behaviour, and a PipeBarrier after it hangs (SetFlag-WaitFlag(ISASI).md)";
  });
  const Pipe src = event_pipes(e).src;
  c.flags.emplace(key, PendingFlag{c.sync.flag_clock(src), c.times.completion(src), loc, by_queue});
}

void wait_flag(HardEvent e, int id, const Loc& loc, bool by_queue) {
  ThreadCtx& c = ctx();
  check_event(c, e, id, loc, "WaitFlag");
  c.launch->yield();
  auto it = c.flags.find({int(e), id});
  check(it != c.flags.end(), loc, [&] {
    return "WaitFlag" + flag_text(e, id) + " with no SetFlag before it: the destination pipe waits forever";
  });
  check(it->second.by_queue == by_queue, loc, [&] {
    return "WaitFlag" + flag_text(e, id) + " consumes the event set at " + where(it->second.loc) + " by " +
           (by_queue ? "the kernel" : "a TQue operation") + ": their event ids collide";
  });
  const Pipe dst = event_pipes(e).dst;
  c.sync.wait(dst, it->second.clock);
  if (dst == Pipe::kS) {
    c.times.s = std::max(c.times.s, it->second.time);
  } else {
    c.times.ready[size_t(dst)] = std::max(c.times.ready[size_t(dst)], it->second.time);
  }
  c.flags.erase(it);
}

void pipe_barrier(pipe_t p, const Loc& loc) {
  ThreadCtx& c = ctx();
  check(p != PIPE_S, loc, [] {
    return "PipeBarrier<PIPE_S>: the hardware orders the scalar pipe itself and the API does not take PIPE_S "
           "(PipeBarrier(ISASI).md)";
  });
  c.launch->yield();
  if (p == PIPE_ALL) {
    c.sync.barrier_all();
    c.times.wait_all(c.times.completion_all());
    return;
  }
  const bool aiv = c.type == CoreType::kAiv;
  const bool has = aiv ? (p == PIPE_V || p == PIPE_MTE2 || p == PIPE_MTE3) : p != PIPE_V;
  check(has, loc, [&] {
    return std::string("PipeBarrier<PIPE_") + pipe_name(to_pipe(p)) + ">: the " + (aiv ? "AIV" : "AIC") +
           " has no such pipe";
  });
  c.sync.barrier(to_pipe(p));
  Timeline& t = c.times;
  t.ready[size_t(to_pipe(p))] = std::max(t.ready[size_t(to_pipe(p))], t.done[size_t(to_pipe(p))]);
}

int alloc_event_id(HardEvent e, const Loc& loc, bool by_queue) {
  ThreadCtx& c = ctx();
  check_event(c, e, 0, loc, "AllocEventID");
  uint8_t& held = c.ids_held[int(e)];
  int id = 0;
  while (id < kEventIds && (held >> id) & 1) ++id;
  check(id < kEventIds, loc, [&] {
    return "TPipe event ids of HardEvent::" + event_name(e) +
           " exhausted: all 8 are held (ReleaseEventID the ones a kernel is done with; AllocEventID.md)";
  });
  held |= uint8_t(1u << id);
  if (by_queue) c.ids_by_queue[int(e)] |= uint8_t(1u << id);
  c.ids_fetched[int(e)] &= uint8_t(~(1u << id));
  return id;
}

void release_event_id(HardEvent e, int id, const Loc& loc, bool by_queue) {
  ThreadCtx& c = ctx();
  check_event(c, e, id, loc, "ReleaseEventID");
  const uint8_t bit = uint8_t(1u << id);
  check(c.ids_held[int(e)] & bit, loc,
        [&] { return "ReleaseEventID" + flag_text(e, id) + " of an id AllocEventID did not hand out"; });
  check(bool(c.ids_by_queue[int(e)] & bit) == by_queue, loc,
        [&] { return "ReleaseEventID" + flag_text(e, id) + " of an id a TQue operation holds"; });
  c.ids_held[int(e)] &= uint8_t(~bit);
  c.ids_by_queue[int(e)] &= uint8_t(~bit);
}

int fetch_event_id(HardEvent e, const Loc& loc) {
  ThreadCtx& c = ctx();
  check_event(c, e, 0, loc, "FetchEventID");
  int id = 0;
  while (id < kEventIds && (c.ids_held[int(e)] >> id) & 1) ++id;
  check(id < kEventIds, loc, [&] { return "FetchEventID: all 8 ids of HardEvent::" + event_name(e) + " are held"; });
  c.ids_fetched[int(e)] |= uint8_t(1u << id);
  return id;
}

}  // namespace ascend_sim

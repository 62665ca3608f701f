#include "sim_cache.h"

namespace ascend_sim {

namespace {

uint64_t addr(const uint8_t* p) { return uint64_t(reinterpret_cast<uintptr_t>(p)); }

// Byte mask of [p, p + bytes) within line `line`.
uint64_t mask_in(uint64_t line, const uint8_t* p, uint64_t bytes) {
  const uint64_t lo = std::max(addr(p), line * kCacheLineBytes), hi = std::min(addr(p) + bytes, (line + 1) * 64);
  if (lo >= hi) return 0;
  const uint64_t n = hi - lo, shift = lo - line * kCacheLineBytes;
  return (n == 64 ? ~0ull : ((1ull << n) - 1)) << shift;
}

std::string gm(const char* name, const uint8_t* base, const uint8_t* p) {
  return std::string("GM '") + name + "' + " + std::to_string(addr(p) - addr(base));
}

}  // namespace

bool DataCaches::scalar_read(uint32_t t, const char* name, const uint8_t* base, const uint8_t* p, uint64_t bytes,
                             const Loc& loc) {
  std::lock_guard<std::mutex> lock(mutex_);
  bool hit = true;
  for (uint64_t line = addr(p) / 64; line * 64 < addr(p) + bytes; ++line) {
    Line& l = lines_[line];
    if (l.dirty_by >= 0 && l.dirty_by != int64_t(t) && (l.dirty_mask & mask_in(line, p, bytes))) {
      fail(loc, "scalar read of " + gm(name, base, p) + " returns stale data: " + names_[l.dirty_by] +
                    " wrote it with SetValue at " + where(l.dirty_at) +
                    " and has not written it back (DataCacheCleanAndInvalid after the SetValue; the scalar data "
                    "cache is per core)");
    }
    hit = hit && l.holders.count(t) > 0;
    Holder& h = l.holders[t];
    if (h.stale) {
      fail(loc, "scalar read of " + gm(name, base, p) + " hits a data-cache line this core cached before " +
                    h.changed_by + " changed it at " + where(h.changed_at) +
                    ": call DataCacheCleanAndInvalid before reading GM that DMA or other cores write");
    }
  }
  return hit;
}

bool DataCaches::scalar_write(uint32_t t, const char* name, const uint8_t* base, const uint8_t* p, uint64_t bytes,
                              const Loc& loc) {
  std::lock_guard<std::mutex> lock(mutex_);
  bool hit = true;
  for (uint64_t line = addr(p) / 64; line * 64 < addr(p) + bytes; ++line) {
    Line& l = lines_[line];
    if (l.dirty_by >= 0 && l.dirty_by != int64_t(t)) {
      fail(loc, "two cores dirty one 64-byte data-cache line at " + gm(name, base, p) + ": " + names_[l.dirty_by] +
                    " (SetValue at " + where(l.dirty_at) + ") and " + names_[t] +
                    "; each write-back overwrites the other's bytes (DataCacheCleanAndInvalid.md, example 3)");
    }
    hit = hit && l.holders.count(t) > 0;
    Holder& h = l.holders[t];
    if (h.stale) {
      fail(loc, "SetValue into a data-cache line of " + gm(name, base, p) + " that " + h.changed_by + " changed at " +
                    where(h.changed_at) + " after this core cached it: the write-back would restore the stale bytes");
    }
    l.dirty_by = t;
    l.dirty_mask |= mask_in(line, p, bytes);
    l.dirty_at = loc;
  }
  return hit;
}

void DataCaches::dma_read(uint32_t, const char* what, const char* name, const uint8_t* base, const uint8_t* p,
                          uint64_t bytes, const Loc& loc) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = lines_.lower_bound(addr(p) / 64); it != lines_.end() && it->first * 64 < addr(p) + bytes; ++it) {
    const Line& l = it->second;
    if (l.dirty_by >= 0 && (l.dirty_mask & mask_in(it->first, p, bytes))) {
      fail(loc, std::string(what) + " reads " + gm(name, base, p) + " (" + std::to_string(bytes) + " bytes), which " +
                    names_[l.dirty_by] + " wrote with SetValue at " + where(l.dirty_at) +
                    " and left in its data cache: call DataCacheCleanAndInvalid after the SetValue");
    }
  }
}

void DataCaches::dma_write(uint32_t t, const char* what, const char* name, const uint8_t* base, const uint8_t* p,
                           uint64_t bytes, const Loc& loc) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = lines_.lower_bound(addr(p) / 64); it != lines_.end() && it->first * 64 < addr(p) + bytes; ++it) {
    Line& l = it->second;
    if (l.dirty_by >= 0) {
      fail(loc, std::string(what) + " writes " + gm(name, base, p) + " into a 64-byte line that " + names_[l.dirty_by] +
                    " dirtied with SetValue at " + where(l.dirty_at) +
                    "; the line's write-back would overwrite it (DataCacheCleanAndInvalid first)");
    }
    for (auto& [holder, h] : l.holders) {
      if (h.stale) continue;
      h.stale = true;
      h.changed_at = loc;
      h.changed_by = std::string(what) + " of " + names_[t];
    }
  }
}

void DataCaches::write_back(uint64_t, Line& l, const Loc&) {
  if (l.dirty_by < 0) return;
  for (auto& [holder, h] : l.holders) {
    if (int64_t(holder) == l.dirty_by || h.stale) continue;
    h.stale = true;
    h.changed_at = l.dirty_at;
    h.changed_by = "the written-back SetValue of " + names_[l.dirty_by];
  }
  l.dirty_by = -1;
  l.dirty_mask = 0;
}

void DataCaches::clean_invalidate(uint32_t t, const uint8_t* p, bool entire, const Loc& loc) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto drop = [&](std::map<uint64_t, Line>::iterator it) {
    Line& l = it->second;
    if (l.dirty_by == int64_t(t)) write_back(it->first, l, loc);
    l.holders.erase(t);
    return l.holders.empty() && l.dirty_by < 0 ? lines_.erase(it) : std::next(it);
  };
  if (!entire) {
    auto it = lines_.find(addr(p) / 64);
    if (it != lines_.end()) drop(it);
    return;
  }
  for (auto it = lines_.begin(); it != lines_.end();) {
    it = it->second.holders.count(t) || it->second.dirty_by == int64_t(t) ? drop(it) : std::next(it);
  }
}

void DataCaches::check_exit(uint32_t t) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [line, l] : lines_) {
    if (l.dirty_by == int64_t(t)) {
      fail(l.dirty_at,
           "a scalar write to GM (SetValue) is still in this core's data cache at kernel exit: call "
           "DataCacheCleanAndInvalid so it reaches GM before anyone reads it");
    }
  }
}

}  // namespace ascend_sim

// A scheduler plugin in C++ whose schedule throws: a plugin must not, and the library's
// promise is that the process then stops (abort) instead of unwinding through its frames.
#include <stdexcept>

#include "vs.h"

static int64_t thrower_schedule(void *, const vs_sched_dest *, size_t, const vs_sched_packet *, uint64_t) {
    throw std::runtime_error("thrown by a plugin");
}

static const vs_sched_ops OPS = {
    VS_SCHED_ABI_MAJOR, sizeof(vs_sched_ops), "thrower", nullptr, nullptr, nullptr, nullptr, nullptr,
    thrower_schedule,   {},
};

extern "C" const vs_sched_ops *vs_sched_plugin_v1(uint32_t) { return &OPS; }

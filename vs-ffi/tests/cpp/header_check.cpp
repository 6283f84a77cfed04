// The header from C++17: it must compile warning-free and its types must be usable as C++ values.
#include <cstring>
#include <type_traits>

#include "vs.h"

static_assert(std::is_trivially_copyable<vs_packet>::value, "descriptors are plain data");
static_assert(std::is_standard_layout<vs_service_key>::value, "keys are plain data");
static_assert(VS_VERSION_NUMBER == ((VS_VERSION_MAJOR << 16) | (VS_VERSION_MINOR << 8) | VS_VERSION_PATCH), "version macros");

namespace {
bool no_neighbours(void *, const vs_addr *, uint8_t *, uint16_t *) { return false; }
}

int header_check(vs_engine *engine) {
    vs_service_key key{};
    key.protocol = 6;
    key.addr.family = VS_AF_INET;
    key.port = 80;
    vs_service_config config{};
    if (vs_service_config_default(&config) != VS_OK) return 1;
    config.scheduler = "mh";
    config.sched_flags = VS_SCHED_FLAG_2;
    if (vs_service_add(engine, &key, &config) != VS_OK) return 2;
    uint8_t frame[128]{};
    vs_packet packet{frame, sizeof frame, 0, 60, 0};
    vs_verdict verdict{};
    vs_neighbour_fn lookup = no_neighbours;
    return vs_process(engine, &packet, 0, lookup, nullptr, &verdict) == VS_OK ? 0 : 3;
}

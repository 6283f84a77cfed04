/* wrandom: weighted random scheduling, a scheduler IPVS does not have, as a C plugin.
 *
 * Each new connection goes to a real server drawn at random with probability proportional to
 * its weight; servers with weight 0 or over their upper threshold are never drawn. Unlike wrr
 * it keeps no position, so several directors (or cores) sharing a service do not move in step.
 * The generator is xorshift64*, seeded from the engine's seed, one per service.
 *
 * Build: gcc -std=c11 -O2 -fPIC -shared -I../../include wrandom.c -o libvs_sched_wrandom.so
 * (-DWRANDOM_ABI=N builds it for another ABI major, which hosts must refuse: a test does.) */
#include <stdlib.h>

#include "vs.h"

#ifndef WRANDOM_ABI
#define WRANDOM_ABI VS_SCHED_ABI_MAJOR
#endif

typedef struct {
    uint64_t rng;
} wrandom_state;

static uint64_t next(wrandom_state *s) {
    uint64_t x = s->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static int usable(const vs_sched_dest *d) { return d->weight > 0 && !(d->flags & VS_DEST_OVERLOAD); }

static int32_t wrandom_init(void **state, const vs_sched_dest *dests, size_t count, uint32_t flags, uint64_t seed) {
    (void)dests;
    (void)count;
    if (flags != 0) return VS_SCHED_BAD_PARAMETER; /* no flags mean anything here */
    wrandom_state *s = malloc(sizeof *s);
    if (!s) return VS_SCHED_BAD_PARAMETER;
    s->rng = (seed ^ 0x9E3779B97F4A7C15ULL) | 1; /* xorshift must not start at 0 */
    *state = s;
    return VS_SCHED_OK;
}

static void wrandom_done(void *state) { free(state); }

static int64_t wrandom_schedule(void *state, const vs_sched_dest *dests, size_t count, const vs_sched_packet *packet,
                                uint64_t now_ms) {
    (void)packet;
    (void)now_ms;
    uint64_t total = 0;
    for (size_t i = 0; i < count; i++)
        if (usable(&dests[i])) total += dests[i].weight;
    if (total == 0) return -1;
    /* total < 2^38, so the modulo's bias is below 2^-26. */
    uint64_t pick = next(state) % total;
    for (size_t i = 0; i < count; i++) {
        if (!usable(&dests[i])) continue;
        if (pick < dests[i].weight) return (int64_t)i;
        pick -= dests[i].weight;
    }
    return -1;
}

static const vs_sched_ops WRANDOM_OPS = {
    .abi_major = WRANDOM_ABI,
    .struct_size = sizeof(vs_sched_ops),
    .name = "wrandom",
    .init_service = wrandom_init,
    .done_service = wrandom_done,
    .schedule = wrandom_schedule,
};

const vs_sched_ops *vs_sched_plugin_v1(uint32_t host_abi_major) {
    (void)host_abi_major; /* the host checks abi_major itself */
    return &WRANDOM_OPS;
}

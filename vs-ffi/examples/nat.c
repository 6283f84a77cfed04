/*
 * A NAT director's core in C, through vs.h: an engine, one service with two real servers,
 * a client's SYN processed, the verdict and the rewritten packet read back, the connection
 * listed. Build it against the library the way README.md shows:
 *
 *   cargo build --release -p vs-ffi
 *   export PKG_CONFIG_PATH=$PWD/target/release
 *   cc vs-ffi/examples/nat.c $(pkg-config --cflags --libs vs) -o nat && ./nat
 *
 * (`pkg-config --cflags --libs vs-static` links the static library instead.)
 */
#include <stdio.h>
#include <string.h>

#include "vs.h"

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }

/* The Internet checksum of `len` bytes, starting from `sum`. */
static uint16_t checksum(uint32_t sum, const uint8_t *p, size_t len) {
    for (size_t i = 0; i + 1 < len; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1) sum += (uint32_t)(p[len - 1] << 8);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* Ethernet / IPv4 / TCP SYN from client:cport to vip:vport; returns the frame's length. */
static size_t syn_frame(uint8_t *f, const uint8_t client[4], uint16_t cport, const uint8_t vip[4], uint16_t vport) {
    const uint8_t client_mac[6] = {2, 0, 0, 0, 0, 1}, director_mac[6] = {2, 0, 0, 0, 0, 2};
    memset(f, 0, 54);
    memcpy(f, director_mac, 6);
    memcpy(f + 6, client_mac, 6);
    put16(f + 12, 0x0800);
    uint8_t *ip = f + 14, *tcp = ip + 20;
    ip[0] = 0x45;
    put16(ip + 2, 40);
    ip[6] = 0x40; /* DF */
    ip[8] = 64;
    ip[9] = 6;
    memcpy(ip + 12, client, 4);
    memcpy(ip + 16, vip, 4);
    put16(ip + 10, checksum(0, ip, 20));
    put16(tcp, cport);
    put16(tcp + 2, vport);
    tcp[12] = 5 << 4;
    tcp[13] = 0x02; /* SYN */
    put16(tcp + 14, 64240);
    uint32_t pseudo = (uint32_t)(client[0] << 8 | client[1]) + (uint32_t)(client[2] << 8 | client[3]) +
                      (uint32_t)(vip[0] << 8 | vip[1]) + (uint32_t)(vip[2] << 8 | vip[3]) + 6 + 20;
    put16(tcp + 16, checksum(pseudo, tcp, 20));
    return 54;
}

/* The host's neighbour table: every next hop is on port 0 with a made-up MAC. */
static bool neighbours(void *user, const vs_addr *next_hop, uint8_t *mac, uint16_t *port) {
    (void)user;
    const uint8_t m[6] = {2, 0, 0, 0, 9, next_hop->bytes[3]};
    memcpy(mac, m, 6);
    *port = 0;
    return true;
}

static vs_addr v4(const uint8_t a[4]) {
    vs_addr x;
    memset(&x, 0, sizeof x);
    x.family = VS_AF_INET;
    memcpy(x.bytes, a, 4);
    return x;
}

#define TRY(call)                                                                  \
    do {                                                                           \
        vs_status s_ = (call);                                                     \
        if (s_ != VS_OK) {                                                         \
            fprintf(stderr, "%s: %s\n", #call, vs_strerror(s_));                   \
            return 1;                                                              \
        }                                                                          \
    } while (0)

int main(void) {
    const uint8_t vip[4] = {198, 18, 0, 100}, client[4] = {198, 18, 0, 1};
    const uint8_t reals[2][4] = {{198, 18, 1, 1}, {198, 18, 1, 2}};

    /* An engine for 4096 connections and 4 services (vs_engine_init places one in memory
       the caller owns instead; vs_engine_footprint says how much). */
    vs_limits limits = {sizeof(vs_limits), 4096, 4};
    vs_engine_config config;
    TRY(vs_engine_config_default(&config));
    vs_engine *engine = NULL;
    TRY(vs_engine_new(&limits, &config, &engine));

    /* ipvsadm -A -t 198.18.0.100:80 -s rr; -a ... -r 198.18.1.{1,2}:8080 -m */
    vs_service_key key;
    memset(&key, 0, sizeof key);
    key.protocol = 6;
    key.addr = v4(vip);
    key.port = 80;
    vs_service_config service;
    TRY(vs_service_config_default(&service));
    service.scheduler = "rr";
    TRY(vs_service_add(engine, &key, &service));
    for (int i = 0; i < 2; i++) {
        vs_real_config real;
        TRY(vs_real_config_default(&real));
        real.addr = v4(reals[i]);
        real.port = 8080;
        real.forward = VS_FWD_NAT;
        TRY(vs_real_add(engine, &key, &real));
    }

    /* A client's SYN in a buffer with headroom; the engine rewrites it in place. */
    uint8_t buffer[256];
    const size_t head = 64;
    size_t len = syn_frame(buffer + head, client, 40000, vip, 80);
    vs_packet packet = {buffer, sizeof buffer, head, len, 0};
    vs_verdict verdict;
    TRY(vs_process(engine, &packet, 0, neighbours, NULL, &verdict));
    if (verdict.action != VS_TRANSMIT) {
        fprintf(stderr, "expected a transmit verdict, got %u\n", verdict.action);
        return 1;
    }
    const uint8_t *ip = buffer + packet.head + 14;
    printf("transmit to %u.%u.%u.%u on port %u: %u.%u.%u.%u:%u -> %u.%u.%u.%u:%u\n", verdict.next_hop.bytes[0],
           verdict.next_hop.bytes[1], verdict.next_hop.bytes[2], verdict.next_hop.bytes[3], verdict.port, ip[12],
           ip[13], ip[14], ip[15], (unsigned)(ip[20] << 8 | ip[21]), ip[16], ip[17], ip[18], ip[19],
           (unsigned)(ip[22] << 8 | ip[23]));

    /* The connection table, as ipvsadm -L -c lists it. */
    vs_conn_info conns[4];
    uint32_t cursor = 0;
    size_t count = 0;
    TRY(vs_conn_list(engine, &cursor, 0, conns, 4, &count));
    for (size_t i = 0; i < count; i++)
        printf("connection %s, expires in %u s\n", conns[i].state_name, (unsigned)(conns[i].expires_in_ms / 1000));
    TRY(vs_engine_free(engine));
    return count == 1 ? 0 : 1;
}

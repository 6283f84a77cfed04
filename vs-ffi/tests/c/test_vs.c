/* The C ABI driven from C: real packets through NAT, DR and TUN services (output bytes and
   checksums checked here, independently of the library), statistics and the connection list,
   and misuse, which must return error codes and never crash.
   Built with gcc -std=c11 -Wall -Wextra -Werror -pedantic, once against each library. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vs.h"

static int checks, failures;

#define CHECK(cond)                                                              \
    do {                                                                         \
        checks++;                                                                \
        if (!(cond)) {                                                           \
            failures++;                                                          \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

#define CHECK_STATUS(call, want)                                                  \
    do {                                                                          \
        vs_status got_ = (call);                                                  \
        checks++;                                                                 \
        if (got_ != (want)) {                                                     \
            failures++;                                                           \
            fprintf(stderr, "%s:%d: %s gave %d (%s), want %d\n", __FILE__, __LINE__, \
                    #call, (int)got_, vs_strerror(got_), (int)(want));            \
        }                                                                         \
    } while (0)

static const uint8_t DIRECTOR_MAC[6] = {0x02, 0xd1, 0x4e, 0xc7, 0x00, 0x01};
static const uint8_t CLIENT_MAC[6] = {0x02, 0xc1, 0x1e, 0x47, 0x00, 0x01};

/* ---- checksums, computed here independently of the library ---- */

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t acc) {
    for (size_t i = 0; i + 1 < n; i += 2) acc += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1) acc += (uint32_t)(p[n - 1] << 8);
    return acc;
}

static uint16_t fold(uint32_t acc) {
    while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
    return (uint16_t)~acc;
}

/* IPv4 header checksum over the header as it is: 0 when valid. */
static uint16_t ipv4_check(const uint8_t *ip) { return fold(sum16(ip, (size_t)(ip[0] & 15) * 4, 0)); }

/* TCP/UDP checksum over an IPv4 packet as it is: 0 when valid. */
static uint16_t l4_check(const uint8_t *ip) {
    size_t ihl = (size_t)(ip[0] & 15) * 4, total = (size_t)(ip[2] << 8 | ip[3]);
    size_t l4len = total - ihl;
    uint32_t acc = sum16(ip + 12, 8, 0);
    acc += ip[9];
    acc += (uint32_t)l4len;
    return fold(sum16(ip + ihl, l4len, acc));
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* Builds Ethernet + IPv4 + TCP (flags) with a payload at data[head]; returns the length. */
static size_t tcp_frame(uint8_t *frame, const uint8_t src_mac[6], const uint8_t dst_mac[6], const uint8_t src[4],
                        uint16_t sport, const uint8_t dst[4], uint16_t dport, uint8_t flags, const char *payload) {
    size_t plen = strlen(payload), total = 20 + 20 + plen;
    memcpy(frame, dst_mac, 6);
    memcpy(frame + 6, src_mac, 6);
    frame[12] = 0x08; frame[13] = 0x00;
    uint8_t *ip = frame + 14;
    memset(ip, 0, 40);
    ip[0] = 0x45; put16(ip + 2, (uint16_t)total); put16(ip + 4, 0x1234); ip[6] = 0x40; ip[8] = 64; ip[9] = 6;
    memcpy(ip + 12, src, 4); memcpy(ip + 16, dst, 4);
    put16(ip + 10, ipv4_check(ip));
    uint8_t *tcp = ip + 20;
    put16(tcp, sport); put16(tcp + 2, dport);
    tcp[4] = 0; tcp[5] = 0; tcp[6] = 0x10; tcp[7] = 0x01; /* seq */
    tcp[12] = 0x50; tcp[13] = flags; put16(tcp + 14, 65535);
    memcpy(tcp + 20, payload, plen);
    put16(tcp + 16, l4_check(ip));
    return 14 + total;
}

/* ---- the host's neighbour table: 198.18.1.N has MAC 02:00:00:00:01:N on port N ---- */

static int lookups;

static bool neighbours(void *user, const vs_addr *hop, uint8_t *mac, uint16_t *port) {
    (void)user;
    lookups++;
    if (hop->family == VS_AF_INET6 && hop->bytes[0] == 0x20 && hop->bytes[1] == 0x01 && hop->bytes[2] == 0x0d &&
        hop->bytes[3] == 0xb8) {
        const uint8_t m[6] = {0x02, 0, 0, 0, 6, hop->bytes[15]};
        memcpy(mac, m, 6);
        *port = 6;
        return true;
    }
    if (hop->family != VS_AF_INET) return false;
    if (hop->bytes[0] == 198 && hop->bytes[1] == 18 && (hop->bytes[2] == 1 || hop->bytes[2] == 0)) {
        const uint8_t m[6] = {0x02, 0, 0, 0, hop->bytes[2], hop->bytes[3]};
        memcpy(mac, m, 6);
        *port = hop->bytes[3];
        return true;
    }
    return false;
}

static vs_addr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    vs_addr x;
    memset(&x, 0, sizeof x);
    x.family = VS_AF_INET;
    x.bytes[0] = a; x.bytes[1] = b; x.bytes[2] = c; x.bytes[3] = d;
    return x;
}

static const uint8_t CLIENT[4] = {198, 18, 0, 1};
static const uint8_t VIP[4] = {198, 18, 0, 10};
static const uint8_t TUN_SRC[4] = {198, 18, 0, 2};

static vs_engine *make_engine(uint8_t **memory) {
    vs_limits limits = {sizeof(vs_limits), 1024, 8};
    size_t need = 0;
    CHECK_STATUS(vs_engine_footprint(&limits, &need), VS_OK);
    CHECK(need > 1024 * 64);
    *memory = malloc(need + 3);
    vs_engine_config config;
    CHECK_STATUS(vs_engine_config_default(&config), VS_OK);
    memcpy(config.mac, DIRECTOR_MAC, 6);
    config.has_tunnel_v4 = true;
    memcpy(config.tunnel_v4, TUN_SRC, 4);
    vs_engine *engine = NULL;
    /* Deliberately misaligned memory: the library aligns inside the footprint. */
    CHECK_STATUS(vs_engine_init(*memory + 3, need, &limits, &config, &engine), VS_OK);
    CHECK(engine != NULL);
    return engine;
}

static vs_service_key tcp_service(uint16_t port) {
    vs_service_key key;
    memset(&key, 0, sizeof key);
    key.protocol = 6;
    key.addr = v4(VIP[0], VIP[1], VIP[2], VIP[3]);
    key.port = port;
    return key;
}

static void add_service(vs_engine *e, uint16_t port, const char *sched, uint8_t forward, int reals, uint16_t rport) {
    vs_service_key key = tcp_service(port);
    vs_service_config sc;
    CHECK_STATUS(vs_service_config_default(&sc), VS_OK);
    sc.scheduler = sched;
    CHECK_STATUS(vs_service_add(e, &key, &sc), VS_OK);
    for (int i = 1; i <= reals; i++) {
        vs_real_config rc;
        CHECK_STATUS(vs_real_config_default(&rc), VS_OK);
        rc.addr = v4(198, 18, 1, (uint8_t)i);
        rc.port = rport;
        rc.forward = forward;
        CHECK_STATUS(vs_real_add(e, &key, &rc), VS_OK);
    }
}

static void test_version(void) {
    CHECK(vs_version_number() == VS_VERSION_NUMBER);
    CHECK(strlen(vs_version()) >= 5);
    CHECK(strcmp(vs_strerror(VS_OK), "success") == 0);
    CHECK(strcmp(vs_strerror(VS_ERR_UNKNOWN_SCHEDULER), "unknown scheduler") == 0);
    CHECK(strcmp(vs_strerror(12345), "unknown status") == 0);
    CHECK(vs_drop_reason_name(0) != NULL);
    CHECK(vs_drop_reason_name(VS_DROP_REASONS) == NULL);
}

static void test_nat(vs_engine *e) {
    add_service(e, 80, "rr", VS_FWD_NAT, 2, 8080);
    uint8_t buf[256] = {0};
    const size_t head = 64;
    int seen[3] = {0, 0, 0};
    for (uint16_t c = 0; c < 4; c++) {
        size_t len = tcp_frame(buf + head, CLIENT_MAC, DIRECTOR_MAC, CLIENT, (uint16_t)(40000 + c), VIP, 80, 0x02, "");
        vs_packet p = {buf, sizeof buf, head, len, 0};
        vs_verdict v;
        CHECK_STATUS(vs_process(e, &p, 1000, neighbours, NULL, &v), VS_OK);
        CHECK(v.action == VS_TRANSMIT);
        CHECK(p.head == head && p.len == len);
        const uint8_t *f = buf + p.head, *ip = f + 14;
        uint8_t real = ip[19];
        CHECK(ip[16] == 198 && ip[17] == 18 && ip[18] == 1 && (real == 1 || real == 2));
        if (real <= 2) seen[real]++;
        CHECK(v.next_hop.family == VS_AF_INET && memcmp(v.next_hop.bytes, ip + 16, 4) == 0);
        CHECK(v.port == real);
        CHECK(memcmp(f + 6, DIRECTOR_MAC, 6) == 0);
        CHECK(f[0] == 0x02 && f[4] == 1 && f[5] == real);
        CHECK(memcmp(ip + 12, CLIENT, 4) == 0);
        CHECK(get16(ip + 22) == 8080 && get16(ip + 20) == 40000 + c);
        CHECK(ip[8] == 63); /* forwarded: TTL decremented */
        CHECK(ipv4_check(ip) == 0);
        CHECK(l4_check(ip) == 0);
    }
    CHECK(seen[1] == 2 && seen[2] == 2); /* round robin */

    /* The real server's SYN-ACK goes back from the VIP. */
    const uint8_t real1[4] = {198, 18, 1, 1};
    const uint8_t rmac[6] = {0x02, 0, 0, 0, 1, 1};
    size_t len = tcp_frame(buf + head, rmac, DIRECTOR_MAC, real1, 8080, CLIENT, 40000, 0x12, "");
    vs_packet p = {buf, sizeof buf, head, len, 0};
    vs_verdict v;
    /* Which real got client port 40000? Ask the connection list. */
    vs_conn_info conns[8];
    uint32_t cursor = 0;
    size_t n = 0;
    CHECK_STATUS(vs_conn_list(e, &cursor, 1000, conns, 8, &n), VS_OK);
    CHECK(n == 4);
    uint8_t real_of_40000 = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK(conns[i].protocol == 6 && !conns[i].is_template);
        CHECK(strcmp(conns[i].state_name, "SYN_RECV") == 0);
        CHECK(conns[i].expires_in_ms > 0 && conns[i].expires_in_ms <= 60000);
        CHECK(conns[i].virt_port == 80 && conns[i].real_port == 8080);
        if (conns[i].client_port == 40000) real_of_40000 = conns[i].real.bytes[3];
    }
    CHECK(real_of_40000 == 1 || real_of_40000 == 2);
    buf[head + 14 + 15] = real_of_40000; /* source address: that real server */
    buf[head + 14 + 10] = 0; buf[head + 14 + 11] = 0;
    put16(buf + head + 14 + 10, ipv4_check(buf + head + 14));
    buf[head + 14 + 20 + 16] = 0; buf[head + 14 + 20 + 17] = 0;
    put16(buf + head + 14 + 20 + 16, l4_check(buf + head + 14));
    CHECK_STATUS(vs_process(e, &p, 1001, neighbours, NULL, &v), VS_OK);
    CHECK(v.action == VS_TRANSMIT);
    const uint8_t *ip = buf + p.head + 14;
    CHECK(memcmp(ip + 12, VIP, 4) == 0 && get16(ip + 20) == 80);
    CHECK(memcmp(ip + 16, CLIENT, 4) == 0 && get16(ip + 22) == 40000);
    CHECK(ipv4_check(ip) == 0 && l4_check(ip) == 0);
    CHECK(memcmp(v.next_hop.bytes, CLIENT, 4) == 0);

    /* Without a neighbour table (once the cached answers are forgotten): dropped with the
       reason. */
    CHECK_STATUS(vs_flush_neighbours(e), VS_OK);
    const uint8_t stranger[4] = {198, 19, 0, 1};
    len = tcp_frame(buf + head, CLIENT_MAC, DIRECTOR_MAC, stranger, 50000, VIP, 80, 0x02, "");
    vs_packet q = {buf, sizeof buf, head, len, 0};
    CHECK_STATUS(vs_process(e, &q, 1002, NULL, NULL, &v), VS_OK);
    CHECK(v.action == VS_DROP && strcmp(vs_drop_reason_name(v.drop_reason), "no neighbour") == 0);

    /* Not for a service: passed unchanged. */
    len = tcp_frame(buf + head, CLIENT_MAC, DIRECTOR_MAC, CLIENT, 40000, VIP, 22, 0x02, "");
    uint8_t copy[256];
    memcpy(copy, buf, sizeof buf);
    vs_packet r = {buf, sizeof buf, head, len, 0};
    CHECK_STATUS(vs_process(e, &r, 1003, neighbours, NULL, &v), VS_OK);
    CHECK(v.action == VS_PASS && memcmp(copy, buf, sizeof buf) == 0);
}

/* TCP checksum over an IPv6 packet without extension headers: 0 when valid. */
static uint16_t l4_check6(const uint8_t *ip) {
    size_t len = (size_t)(ip[4] << 8 | ip[5]);
    uint32_t acc = sum16(ip + 8, 32, 0);
    acc += (uint32_t)len;
    acc += ip[6];
    return fold(sum16(ip + 40, len, acc));
}

static void test_nat_ipv6(vs_engine *e) {
    static const uint8_t client6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
    static const uint8_t vip6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10};
    static const uint8_t real6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
    vs_service_key key;
    memset(&key, 0, sizeof key);
    key.protocol = 6;
    key.addr.family = VS_AF_INET6;
    memcpy(key.addr.bytes, vip6, 16);
    key.port = 80;
    vs_service_config sc;
    vs_service_config_default(&sc);
    sc.scheduler = "wlc";
    CHECK_STATUS(vs_service_add(e, &key, &sc), VS_OK);
    vs_real_config rc;
    vs_real_config_default(&rc);
    rc.addr.family = VS_AF_INET6;
    memcpy(rc.addr.bytes, real6, 16);
    rc.port = 8080;
    CHECK_STATUS(vs_real_add(e, &key, &rc), VS_OK);

    uint8_t buf[256] = {0};
    const size_t head = 16;
    uint8_t *f = buf + head, *ip = f + 14, *tcp = ip + 40;
    memcpy(f, DIRECTOR_MAC, 6);
    memcpy(f + 6, CLIENT_MAC, 6);
    f[12] = 0x86; f[13] = 0xdd;
    ip[0] = 0x60; put16(ip + 4, 20 + 4); ip[6] = 6; ip[7] = 64;
    memcpy(ip + 8, client6, 16); memcpy(ip + 24, vip6, 16);
    put16(tcp, 43000); put16(tcp + 2, 80); tcp[12] = 0x50; tcp[13] = 0x02; put16(tcp + 14, 65535);
    memcpy(tcp + 20, "ping", 4);
    put16(tcp + 16, l4_check6(ip));
    size_t len = 14 + 40 + 24;
    vs_packet p = {buf, sizeof buf, head, len, 0};
    vs_verdict v;
    CHECK_STATUS(vs_process(e, &p, 5000, neighbours, NULL, &v), VS_OK);
    CHECK(v.action == VS_TRANSMIT && v.next_hop.family == VS_AF_INET6 && v.port == 6);
    CHECK(memcmp(v.next_hop.bytes, real6, 16) == 0);
    CHECK(memcmp(ip + 24, real6, 16) == 0 && memcmp(ip + 8, client6, 16) == 0);
    CHECK(get16(tcp + 2) == 8080 && get16(tcp) == 43000);
    CHECK(ip[7] == 63);
    CHECK(f[4] == 6 && f[5] == 1 && memcmp(f + 6, DIRECTOR_MAC, 6) == 0);
    CHECK(l4_check6(ip) == 0);
    CHECK(memcmp(tcp + 20, "ping", 4) == 0);
    CHECK_STATUS(vs_service_delete(e, &key), VS_OK);
}

/* A firewall-mark service (-f 7): only packets the host marked 7 match it, also in a burst. */
static void test_fwmark_burst(vs_engine *e) {
    vs_service_key key;
    memset(&key, 0, sizeof key);
    key.fwmark = 7;
    key.addr.family = VS_AF_INET;
    vs_service_config sc;
    vs_service_config_default(&sc);
    sc.scheduler = "rr";
    CHECK_STATUS(vs_service_add(e, &key, &sc), VS_OK);
    vs_real_config rc;
    vs_real_config_default(&rc);
    rc.addr = v4(198, 18, 1, 7);
    rc.port = 0;
    rc.forward = VS_FWD_DR;
    CHECK_STATUS(vs_real_add(e, &key, &rc), VS_OK);
    static uint8_t bufs[3][128];
    vs_packet packets[3];
    vs_verdict verdicts[3];
    for (int i = 0; i < 3; i++) {
        size_t len = tcp_frame(bufs[i] + 16, CLIENT_MAC, DIRECTOR_MAC, CLIENT, (uint16_t)(46000 + i), VIP, 9999, 0x02, "");
        vs_packet p = {bufs[i], sizeof bufs[i], 16, len, i == 1 ? 0u : 7u};
        packets[i] = p;
    }
    CHECK_STATUS(vs_process_burst(e, packets, verdicts, 3, 6000, neighbours, NULL, NULL), VS_OK);
    CHECK(verdicts[0].action == VS_TRANSMIT && verdicts[0].next_hop.bytes[3] == 7);
    CHECK(verdicts[1].action == VS_PASS); /* unmarked: no service on port 9999 */
    CHECK(verdicts[2].action == VS_TRANSMIT && bufs[2][16 + 5] == 7);
    CHECK_STATUS(vs_service_delete(e, &key), VS_OK);
}

static void test_dr(vs_engine *e) {
    add_service(e, 443, "wlc", VS_FWD_DR, 1, 443);
    uint8_t buf[256] = {0}, before[256];
    const size_t head = 32;
    size_t len = tcp_frame(buf + head, CLIENT_MAC, DIRECTOR_MAC, CLIENT, 41000, VIP, 443, 0x02, "hello");
    memcpy(before, buf, sizeof buf);
    vs_packet p = {buf, sizeof buf, head, len, 0};
    vs_verdict v;
    CHECK_STATUS(vs_process(e, &p, 2000, neighbours, NULL, &v), VS_OK);
    CHECK(v.action == VS_TRANSMIT && v.next_hop.bytes[3] == 1 && v.next_hop.bytes[2] == 1);
    CHECK(p.head == head && p.len == len);
    const uint8_t want_mac[6] = {0x02, 0, 0, 0, 1, 1};
    CHECK(memcmp(buf + head, want_mac, 6) == 0 && memcmp(buf + head + 6, DIRECTOR_MAC, 6) == 0);
    /* Direct routing leaves the IP packet alone but for the TTL (decremented, as IPVS does
       for every forwarded packet) and the header checksum. */
    const uint8_t *ip = buf + head + 14, *orig = before + head + 14;
    CHECK(ip[8] == orig[8] - 1 && ipv4_check(ip) == 0);
    CHECK(memcmp(ip, orig, 8) == 0 && memcmp(ip + 12, orig + 12, len - 14 - 12) == 0);
}

static void test_tun(vs_engine *e) {
    add_service(e, 8443, "rr", VS_FWD_TUN, 1, 8443);
    uint8_t buf[256] = {0}, inner[256];
    const size_t head = 64;
    size_t len = tcp_frame(buf + head, CLIENT_MAC, DIRECTOR_MAC, CLIENT, 42000, VIP, 8443, 0x02, "tunnelled");
    memcpy(inner, buf + head + 14, len - 14);
    vs_packet p = {buf, sizeof buf, head, len, 0};
    vs_verdict v;
    CHECK_STATUS(vs_process(e, &p, 3000, neighbours, NULL, &v), VS_OK);
    CHECK(v.action == VS_TRANSMIT);
    CHECK(p.head == head - 20 && p.len == len + 20);
    const uint8_t *f = buf + p.head, *outer = f + 14;
    CHECK(f[12] == 0x08 && f[13] == 0x00);
    CHECK(outer[0] == 0x45 && outer[9] == 4); /* IP-in-IP */
    CHECK(get16(outer + 2) == len - 14 + 20);
    CHECK(memcmp(outer + 12, TUN_SRC, 4) == 0);
    CHECK(outer[16] == 198 && outer[17] == 18 && outer[18] == 1 && outer[19] == 1);
    CHECK(ipv4_check(outer) == 0);
    /* The inner packet is the client's (TTL decremented as IPVS does before tunnelling). */
    CHECK(memcmp(outer + 20 + 12, inner + 12, 8) == 0 && memcmp(outer + 40, inner + 20, len - 34) == 0);
    CHECK(ipv4_check(outer + 20) == 0 && l4_check(outer + 20) == 0);

    /* No headroom for the outer header: dropped, the buffer untouched. */
    len = tcp_frame(buf, CLIENT_MAC, DIRECTOR_MAC, CLIENT, 42001, VIP, 8443, 0x02, "x");
    vs_packet q = {buf, sizeof buf, 0, len, 0};
    CHECK_STATUS(vs_process(e, &q, 3001, neighbours, NULL, &v), VS_OK);
    CHECK(v.action == VS_DROP && strcmp(vs_drop_reason_name(v.drop_reason), "no headroom") == 0);
}

static void test_burst_stats_sweep(vs_engine *e) {
    enum { N = 40 };
    static uint8_t bufs[N][128];
    vs_packet packets[N];
    vs_verdict verdicts[N];
    for (int i = 0; i < N; i++) {
        size_t len = tcp_frame(bufs[i] + 16, CLIENT_MAC, DIRECTOR_MAC, CLIENT, (uint16_t)(50000 + i), VIP, 80, 0x02, "");
        vs_packet p = {bufs[i], sizeof bufs[i], 16, len, 0};
        packets[i] = p;
    }
    size_t processed = 0;
    CHECK_STATUS(vs_process_burst(e, packets, verdicts, N, 4000, neighbours, NULL, &processed), VS_OK);
    CHECK(processed == N);
    int transmitted = 0;
    for (int i = 0; i < N; i++) {
        const uint8_t *ip = bufs[i] + 16 + 14;
        transmitted += verdicts[i].action == VS_TRANSMIT;
        CHECK(ipv4_check(ip) == 0 && l4_check(ip) == 0 && get16(ip + 22) == 8080);
    }
    CHECK(transmitted == N);

    vs_global_stats g;
    CHECK_STATUS(vs_engine_stats(e, &g), VS_OK);
    /* NAT: 4 + the stranger's (scheduled before its neighbour lookup failed, as in IPVS);
       IPv6 NAT 1 and fwmark 2 (their services deleted, the connections draining); DR 1; TUN 2 (one dropped for
       headroom after scheduling); the burst. */
    enum { ALL = 4 + 1 + 1 + 2 + 1 + 2 + N };
    CHECK(g.total.conns == ALL);
    CHECK(g.conns == ALL && g.capacity == 1024);
    CHECK(g.passed == 2);

    vs_service_info services[2];
    size_t n = 0;
    CHECK_STATUS(vs_service_list(e, services, 2, &n), VS_OK);
    CHECK(n == 3); /* three services, room for two: the count says so */
    CHECK(strcmp(services[0].scheduler, "rr") == 0 && services[0].key.port == 80);
    CHECK(services[0].stats.conns == 4 + 1 + N && services[0].reals == 2);

    vs_real_info reals[4];
    vs_service_key key = tcp_service(80);
    CHECK_STATUS(vs_real_list(e, &key, reals, 4, &n), VS_OK);
    CHECK(n == 2);
    CHECK(reals[0].addr.bytes[3] == 2); /* newest first, as ipvsadm lists */
    CHECK(reals[0].inactive_conns + reals[1].inactive_conns + reals[0].active_conns + reals[1].active_conns == 4 + 1 + N);
    CHECK(reals[0].forward == VS_FWD_NAT && reals[0].weight == 1);

    /* Everything expires after the SYN_RECV timeout; the sweep visits the whole table. */
    size_t expired = 0;
    CHECK_STATUS(vs_sweep(e, 4000 + 3600 * 1000, 4096, &expired), VS_OK);
    CHECK(expired == ALL);
    CHECK_STATUS(vs_engine_stats(e, &g), VS_OK);
    CHECK(g.conns == 0 && g.expired == expired);

    /* A refused descriptor stops the burst there, and the count says how far it got: the
       first packet (for no service) was processed, the second lies outside its buffer, the
       third was not touched. */
    static uint8_t stranger[128];
    size_t slen = tcp_frame(stranger + 16, CLIENT_MAC, DIRECTOR_MAC, CLIENT, 50999, CLIENT, 80, 0x10, "");
    vs_packet three[3] = {{stranger, sizeof stranger, 16, slen, 0}, {bufs[1], sizeof bufs[1], 100, 64, 0}, {bufs[2], sizeof bufs[2], 16, 54, 0}};
    vs_verdict out[3];
    memset(out, 0xff, sizeof out);
    processed = 99;
    CHECK_STATUS(vs_process_burst(e, three, out, 3, 8000000, neighbours, NULL, &processed), VS_ERR_INVALID);
    CHECK(processed == 1);
    CHECK(out[0].action == VS_PASS && out[2].action == 0xff);
}

static void test_config(vs_engine *e) {
    uint32_t tcp = 0, fin = 0, udp = 0;
    CHECK_STATUS(vs_get_timeouts(e, &tcp, &fin, &udp), VS_OK);
    CHECK(tcp == 900 && fin == 120 && udp == 300);
    CHECK_STATUS(vs_set_timeouts(e, 600, 0, 60), VS_OK);
    CHECK_STATUS(vs_get_timeouts(e, &tcp, &fin, &udp), VS_OK);
    CHECK(tcp == 600 && fin == 120 && udp == 60);
    CHECK_STATUS(vs_set_timeouts(e, 40 * 86400, 0, 0), VS_ERR_RANGE);
    vs_defence d;
    CHECK_STATUS(vs_get_defence(e, &d), VS_OK);
    CHECK(d.struct_size == sizeof d && d.am_droprate == 10);
    d.drop_packet = 3;
    CHECK_STATUS(vs_set_defence(e, &d), VS_OK);
    d.drop_packet = 4;
    CHECK_STATUS(vs_set_defence(e, &d), VS_ERR_RANGE);

    vs_service_key key = tcp_service(80);
    vs_service_config sc;
    vs_service_config_default(&sc);
    sc.scheduler = "wrr";
    CHECK_STATUS(vs_service_edit(e, &key, &sc), VS_OK);
    vs_real_config rc;
    vs_real_config_default(&rc);
    rc.addr = v4(198, 18, 1, 1);
    rc.port = 8080;
    rc.weight = 5;
    CHECK_STATUS(vs_real_edit(e, &key, &rc), VS_OK);
    vs_real_info reals[2];
    size_t n = 0;
    CHECK_STATUS(vs_real_list(e, &key, reals, 2, &n), VS_OK);
    CHECK(n == 2 && reals[1].weight == 5);
    CHECK_STATUS(vs_real_delete(e, &key, &rc.addr, 8080), VS_OK);
    CHECK_STATUS(vs_real_delete(e, &key, &rc.addr, 8080), VS_ERR_NOT_FOUND);
    CHECK_STATUS(vs_zero_stats(e, &key), VS_OK);
    CHECK_STATUS(vs_zero_stats(e, NULL), VS_OK);
    CHECK_STATUS(vs_service_delete(e, &key), VS_OK);
    CHECK_STATUS(vs_service_delete(e, &key), VS_ERR_NOT_FOUND);
}

static void test_misuse(vs_engine *e) {
    vs_limits limits = {sizeof(vs_limits), 1024, 8};
    size_t need = 0;
    vs_engine *out = NULL;
    uint8_t small[256];
    CHECK_STATUS(vs_engine_footprint(NULL, &need), VS_ERR_NULL);
    CHECK_STATUS(vs_engine_footprint(&limits, NULL), VS_ERR_NULL);
    vs_limits bad = limits;
    bad.struct_size = 4;
    CHECK_STATUS(vs_engine_footprint(&bad, &need), VS_ERR_STRUCT_SIZE);
    bad = limits;
    bad.max_conns = 0;
    CHECK_STATUS(vs_engine_footprint(&bad, &need), VS_ERR_RANGE);
    CHECK_STATUS(vs_engine_init(small, sizeof small, &limits, NULL, &out), VS_ERR_TOO_SMALL);
    CHECK_STATUS(vs_engine_init(NULL, 0, &limits, NULL, &out), VS_ERR_NULL);
    CHECK_STATUS(vs_engine_init(small, sizeof small, &limits, NULL, NULL), VS_ERR_NULL);
    vs_engine_config cfg;
    vs_engine_config_default(&cfg);
    cfg.struct_size = 8;
    CHECK_STATUS(vs_engine_configure(e, &cfg), VS_ERR_STRUCT_SIZE);
    vs_engine_config_default(&cfg);
    cfg.checksum = 9;
    CHECK_STATUS(vs_engine_configure(e, &cfg), VS_ERR_INVALID);

    /* Versioned structures: the size is read first and nothing past it. A structure smaller
       than any version, allocated at exactly its size (AddressSanitizer sees any read past
       it), is refused; a newer caller's larger one is taken when its unknown tail is zero. */
    size_t short_len = offsetof(vs_engine_config, seed);
    vs_engine_config *shorter = malloc(short_len);
    vs_engine_config_default(&cfg);
    memcpy(shorter, &cfg, short_len);
    shorter->struct_size = (uint32_t)short_len;
    CHECK_STATUS(vs_engine_configure(e, shorter), VS_ERR_STRUCT_SIZE);
    CHECK_STATUS(vs_engine_init(small, sizeof small, &limits, shorter, &out), VS_ERR_STRUCT_SIZE);
    free(shorter);
    struct {
        vs_engine_config config;
        uint64_t later;
    } newer;
    memset(&newer, 0, sizeof newer);
    vs_engine_config_default(&newer.config);
    newer.config.struct_size = sizeof newer;
    CHECK_STATUS(vs_engine_configure(e, &newer.config), VS_OK);
    newer.later = 1;
    CHECK_STATUS(vs_engine_configure(e, &newer.config), VS_ERR_STRUCT_SIZE);
    /* Flags are bytes: any non-zero value is true. */
    vs_engine_config_default(&cfg);
    cfg.ethernet = 2;
    CHECK_STATUS(vs_engine_configure(e, &cfg), VS_OK);
    /* A foreign object smaller than a handle: refused after its first 8 bytes are read. */
    uint64_t *foreign = malloc(sizeof *foreign);
    *foreign = 0x1234;
    CHECK_STATUS(vs_sweep((vs_engine *)(void *)foreign, 0, 1, NULL), VS_ERR_INVALID);
    free(foreign);

    /* Not an engine: zeroed memory, NULL. */
    static uint64_t fake[512];
    CHECK_STATUS(vs_sweep((vs_engine *)(void *)fake, 0, 1, NULL), VS_ERR_INVALID);
    CHECK_STATUS(vs_sweep(NULL, 0, 1, NULL), VS_ERR_NULL);

    vs_service_key key = tcp_service(9000);
    vs_service_config sc;
    vs_service_config_default(&sc);
    CHECK_STATUS(vs_service_add(e, NULL, &sc), VS_ERR_NULL);
    CHECK_STATUS(vs_service_add(e, &key, NULL), VS_ERR_NULL);
    sc.scheduler = "no-such-scheduler";
    CHECK_STATUS(vs_service_add(e, &key, &sc), VS_ERR_UNKNOWN_SCHEDULER);
    sc.scheduler = "\xff\xfe";
    CHECK_STATUS(vs_service_add(e, &key, &sc), VS_ERR_UTF8);
    sc.scheduler = "sh";
    sc.sched_flags = 0x4000;
    CHECK_STATUS(vs_service_add(e, &key, &sc), VS_ERR_INVALID);
    sc.sched_flags = VS_SCHED_FLAG_2;
    sc.struct_size = 3;
    CHECK_STATUS(vs_service_add(e, &key, &sc), VS_ERR_STRUCT_SIZE);
    vs_service_config_default(&sc);
    CHECK_STATUS(vs_service_add(e, &key, &sc), VS_OK);
    CHECK_STATUS(vs_service_add(e, &key, &sc), VS_ERR_EXISTS);
    vs_service_key badkey = key;
    badkey.addr.family = 5;
    CHECK_STATUS(vs_service_add(e, &badkey, &sc), VS_ERR_INVALID);
    badkey = key;
    badkey.protocol = 1;
    badkey.port = 9001;
    CHECK_STATUS(vs_service_add(e, &badkey, &sc), VS_ERR_INVALID);

    vs_real_config rc;
    vs_real_config_default(&rc);
    rc.addr = v4(198, 18, 1, 9);
    rc.forward = 7;
    CHECK_STATUS(vs_real_add(e, &key, &rc), VS_ERR_INVALID);
    rc.forward = VS_FWD_NAT;
    CHECK_STATUS(vs_real_add(e, &key, &rc), VS_OK);
    CHECK_STATUS(vs_real_add(e, &key, &rc), VS_ERR_EXISTS);
    vs_service_key missing = tcp_service(9999);
    CHECK_STATUS(vs_real_add(e, &missing, &rc), VS_ERR_NOT_FOUND);

    /* Fill the service slots: the ninth service does not fit. */
    vs_status last = VS_OK;
    for (uint16_t port = 10000; port < 10010 && last == VS_OK; port++) {
        vs_service_key k = tcp_service(port);
        last = vs_service_add(e, &k, &sc);
    }
    CHECK(last == VS_ERR_FULL);

    /* Packets: bounds outside the buffer, NULL data, short buffers. */
    uint8_t buf[64];
    vs_verdict v;
    vs_packet p = {buf, sizeof buf, 60, 10, 0};
    CHECK_STATUS(vs_process(e, &p, 0, neighbours, NULL, &v), VS_ERR_INVALID);
    vs_packet q = {NULL, 100, 0, 60, 0};
    CHECK_STATUS(vs_process(e, &q, 0, neighbours, NULL, &v), VS_ERR_NULL);
    vs_packet r = {buf, sizeof buf, 0, 20, 0};
    memset(buf, 0xff, sizeof buf);
    CHECK_STATUS(vs_process(e, &r, 0, neighbours, NULL, NULL), VS_ERR_NULL);
    CHECK_STATUS(vs_process(e, &r, 0, neighbours, NULL, &v), VS_OK);
    CHECK(v.action == VS_PASS); /* garbage is the host's problem, not a crash */
    CHECK_STATUS(vs_process_burst(e, NULL, &v, 1, 0, neighbours, NULL, NULL), VS_ERR_NULL);
    CHECK_STATUS(vs_process_burst(e, NULL, NULL, 0, 0, neighbours, NULL, NULL), VS_OK);
    size_t n = 0;
    CHECK_STATUS(vs_service_list(e, NULL, 0, &n), VS_OK);
    CHECK(n == 8);
    CHECK_STATUS(vs_service_list(e, NULL, 4, &n), VS_ERR_NULL);
    CHECK_STATUS(vs_set_state_timeout(e, 99, 10), VS_ERR_INVALID);
    uint32_t cursor = 0;
    CHECK_STATUS(vs_conn_list(e, NULL, 0, NULL, 0, &n), VS_ERR_NULL);
    CHECK_STATUS(vs_conn_list(e, &cursor, 0, NULL, 0, &n), VS_OK);
    CHECK(n == 0);
}

/* A scheduler in C registered statically, as firmware does: the newest real server always. */
static int newest_calls;

static int64_t newest_schedule(void *state, const vs_sched_dest *dests, size_t count, const vs_sched_packet *packet,
                               uint64_t now_ms) {
    (void)state;
    (void)now_ms;
    newest_calls++;
    if (count == 0 || packet->protocol != 6) return -1;
    return (dests[0].flags & VS_DEST_AVAILABLE) && dests[0].weight > 0 ? 0 : -1;
}

static const vs_sched_ops NEWEST = {
    .abi_major = VS_SCHED_ABI_MAJOR,
    .struct_size = sizeof(vs_sched_ops),
    .name = "newest",
    .schedule = newest_schedule,
};

static void test_static_scheduler(void) {
    uint8_t *memory = NULL;
    vs_engine *e = make_engine(&memory);
    vs_service_key key = tcp_service(80);
    vs_service_config sc;
    vs_service_config_default(&sc);
    sc.scheduler = "newest";
    CHECK_STATUS(vs_service_add(e, &key, &sc), VS_ERR_UNKNOWN_SCHEDULER);
    CHECK_STATUS(vs_register_scheduler(e, &NEWEST), VS_OK);
    CHECK_STATUS(vs_register_scheduler(e, &NEWEST), VS_ERR_EXISTS);
    CHECK_STATUS(vs_register_scheduler(e, NULL), VS_ERR_NULL);
    vs_sched_ops wrong = NEWEST;
    wrong.abi_major = VS_SCHED_ABI_MAJOR + 1;
    CHECK_STATUS(vs_register_scheduler(e, &wrong), VS_ERR_PLUGIN_ABI);
    wrong = NEWEST;
    wrong.struct_size = 16;
    CHECK_STATUS(vs_register_scheduler(e, &wrong), VS_ERR_PLUGIN_ABI);
    /* A table as small as it says: refused after its first 8 bytes are read. */
    vs_sched_ops *older = malloc(16);
    memcpy(older, &NEWEST, 16);
    older->struct_size = 16;
    CHECK_STATUS(vs_register_scheduler(e, older), VS_ERR_PLUGIN_ABI);
    free(older);
    wrong = NEWEST;
    wrong.name = "rr";
    CHECK_STATUS(vs_register_scheduler(e, &wrong), VS_ERR_EXISTS);
    wrong.name = "a-name-far-too-long";
    CHECK_STATUS(vs_register_scheduler(e, &wrong), VS_ERR_INVALID);
    wrong = NEWEST;
    wrong.schedule = NULL;
    CHECK_STATUS(vs_register_scheduler(e, &wrong), VS_ERR_INVALID);
    add_service(e, 80, "newest", VS_FWD_NAT, 3, 8080);
    uint8_t buf[256] = {0};
    for (uint16_t c = 0; c < 5; c++) {
        size_t len = tcp_frame(buf + 64, CLIENT_MAC, DIRECTOR_MAC, CLIENT, (uint16_t)(45000 + c), VIP, 80, 0x02, "");
        vs_packet p = {buf, sizeof buf, 64, len, 0};
        vs_verdict v;
        CHECK_STATUS(vs_process(e, &p, 1000, neighbours, NULL, &v), VS_OK);
        CHECK(v.action == VS_TRANSMIT && buf[64 + 14 + 19] == 3); /* 198.18.1.3 was added last */
    }
    CHECK(newest_calls == 5);
    vs_service_info info;
    size_t n = 0;
    CHECK_STATUS(vs_service_list(e, &info, 1, &n), VS_OK);
    CHECK(n == 1 && strcmp(info.scheduler, "newest") == 0);
    CHECK_STATUS(vs_engine_fini(e), VS_OK);
    CHECK_STATUS(vs_engine_stats(e, &(vs_global_stats){0}), VS_ERR_INVALID); /* ended: refused */
    CHECK_STATUS(vs_engine_fini(e), VS_ERR_INVALID);
    free(memory);
}

#if defined(VS_STD)
static void test_heap_engine(void) {
    vs_limits limits = {sizeof(vs_limits), 4096, 4};
    vs_engine *e = NULL;
    CHECK_STATUS(vs_engine_new(&limits, NULL, &e), VS_OK);
    add_service(e, 80, "wlc", VS_FWD_NAT, 3, 80);
    vs_global_stats g;
    CHECK_STATUS(vs_engine_stats(e, &g), VS_OK);
    CHECK(g.capacity == 4096);
    CHECK_STATUS(vs_engine_fini(e), VS_ERR_INVALID); /* allocated: vs_engine_free ends it */
    CHECK_STATUS(vs_engine_free(e), VS_OK);
    CHECK_STATUS(vs_engine_free(NULL), VS_OK);
}
#endif

int main(void) {
    uint8_t *memory = NULL;
    test_version();
    vs_engine *e = make_engine(&memory);
    test_nat(e);
    test_nat_ipv6(e);
    test_fwmark_burst(e);
    test_dr(e);
    test_tun(e);
    test_burst_stats_sweep(e);
    test_config(e);
    test_misuse(e);
    test_static_scheduler();
#if defined(VS_STD)
    CHECK_STATUS(vs_engine_free(e), VS_ERR_INVALID); /* caller memory: not ours to free */
    test_heap_engine();
#endif
    CHECK_STATUS(vs_engine_fini(e), VS_OK);
    free(memory);
    printf("%d checks, %d failures, %d neighbour lookups\n", checks, failures, lookups);
    return failures == 0 ? 0 : 1;
}

/* vigil-sink: a stand-in Vigil server that acknowledges every Ingest at once
 * without storing anything (it counts the events of each batch by walking
 * the IngestRequest's fields, and inflates COMPRESSED ones). It measures the
 * agent alone, without the real server's cost, and exercises the client's
 * handling of PING, COMPRESSED responses and GOAWAY.
 *
 *   vigil-sink [--listen HOST:PORT] [--ping-every N] [--compress]
 *              [--goaway-after N] [--fail-every N [--retry-after MS]] [--for SECONDS]
 *              [--goaway-after-welcome] [--ping-flood N] [--received-at SECONDS]
 *              [--subscribe-events N] [--goaway-unanswered N]
 *
 * --goaway-after-welcome: every connection gets GOAWAY right after its
 * Welcome (and is closed). --ping-flood N: after the Welcome, N PINGs of
 * 64 KiB are sent while nothing is read, then a last small one; once the
 * client has read them all, the sink reads again and prints "N PONGs before
 * the last PING's" when that one's PONG arrives. --received-at: the
 * IngestResponse's received_at seconds. --subscribe-events N: Subscribe is
 * answered too, as by a server that keeps cutting its subscribers off: each
 * call gets N events (N at most 8, the default window: credit is not
 * counted), then TRAILERS with a status to resume after, UNAVAILABLE and
 * RESOURCE_EXHAUSTED by turns, carrying vigil.cursor = the last event's
 * cursor. Events are numbered across calls (seq, cursor "sink-<seq>"); an
 * event's request_id is "s<call>-<i>" (calls counted from 1) and its
 * description where its call started: "from_now", "since" or "cursor:<C>".
 * --goaway-unanswered N: the first N Ingest calls (of all connections) get a
 * GOAWAY that accepts them (last_stream_id = their stream), and the
 * connection is closed without answering them: a drain cut short.
 *
 * Prints "listening on HOST:PORT" on stderr, and totals when it ends (SIGINT,
 * SIGTERM, or --for). Every other method is answered UNIMPLEMENTED. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "../src/internal.h"

enum { CALL_OTHER, CALL_INGEST, CALL_SUBSCRIBE };

typedef struct call {
    uint32_t stream;
    int method;
} call;

typedef struct conn {
    int fd;
    int phase; /* 0 preface, 1 hello, 2 active, 3 draining */
    vbuf in, out;
    size_t in_off, out_off;
    call calls[256];
    int n_calls;
    uint64_t answered;
    uint32_t highest;
    long flood_left;        /* --ping-flood: PINGs still to send */
    bool flooding;          /* ... not reading until the client read them and the last one */
    bool flood_done;        /* the last PING is queued, its PONG not read yet */
    uint64_t flood_pongs;   /* PONGs read before the last PING's */
} conn;

static volatile sig_atomic_t stop;
static uint64_t seq, total_events, total_batches, total_bytes, pings, pongs;
static long ping_every, goaway_after, fail_every, ping_flood;
static bool goaway_after_welcome;
static const char *received_at;
/* Sent as the failures' vigil.retry-after-ms, when given (any text). */
static const char *retry_after;
static bool compress_responses;
/* --subscribe-events: events per Subscribe call (0: Subscribe is UNIMPLEMENTED). */
static long subscribe_events;
/* --goaway-unanswered: Ingest calls still to accept in a GOAWAY and leave unanswered. */
static long goaway_unanswered;
static uint64_t subscribe_calls, subscribe_seq;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static void frame_out(conn *c, uint8_t type, uint8_t flags, uint32_t stream, const ProtobufCMessage *m) {
    if (type == FRAME_MESSAGE && compress_responses && m) {
        size_t n = protobuf_c_message_get_packed_size(m);
        uint8_t *raw = malloc(n ? n : 1);
        protobuf_c_message_pack(m, raw);
        uLongf zl = compressBound((uLong)n);
        if (vbuf_reserve(&c->out, FRAME_HEADER_SIZE + zl) == 0 &&
            compress2(c->out.p + c->out.len + FRAME_HEADER_SIZE, &zl, raw, (uLong)n, 6) == Z_OK) {
            put_frame_header(c->out.p + c->out.len, (uint32_t)zl, type, flags | FLAG_COMPRESSED, stream);
            c->out.len += FRAME_HEADER_SIZE + zl;
        }
        free(raw);
        return;
    }
    frame_append_pb(&c->out, type, flags, stream, m);
}

static long count_events(const uint8_t *p, size_t n) {
    size_t i = 0;
    long events = 0;
    while (i < n) {
        uint64_t tag, len;
        size_t k = get_varint(p + i, n - i, &tag);
        if (!k) return -1;
        i += k;
        if ((tag & 7) == 0) {
            k = get_varint(p + i, n - i, &len);
            if (!k) return -1;
            i += k;
            continue;
        }
        if ((tag & 7) != 2) return -1;
        k = get_varint(p + i, n - i, &len);
        if (!k || len > n - i - k) return -1;
        i += k + (size_t)len;
        if (tag >> 3 == 1) events++;
    }
    return events;
}

static void status_out(conn *c, uint32_t stream, uint32_t code, const char *message) {
    Vigil__V1__Status st = VIGIL__V1__STATUS__INIT;
    st.code = code;
    st.message = (char *)(uintptr_t)message;
    frame_out(c, FRAME_TRAILERS, 0, stream, &st.base);
}

static void goaway_out(conn *c, uint32_t code, const char *message) {
    Vigil__V1__GoAway g = VIGIL__V1__GO_AWAY__INIT;
    g.last_stream_id = c->highest;
    g.code = code;
    g.message = (char *)(uintptr_t)message;
    frame_out(c, FRAME_GOAWAY, 0, 0, &g.base);
}

/* --subscribe-events: answers a Subscribe call with its events, then ends it
 * with a status to resume after (see the top of this file). */
static void subscribe_out(conn *c, uint32_t stream, const uint8_t *payload, size_t len) {
    Vigil__V1__SubscribeRequest *req = vigil__v1__subscribe_request__unpack(NULL, len, payload);
    if (!req) {
        status_out(c, stream, VIGIL_INVALID_ARGUMENT, "not a SubscribeRequest");
        return;
    }
    char start[300];
    if (req->start_case == VIGIL__V1__SUBSCRIBE_REQUEST__START_CURSOR)
        snprintf(start, sizeof start, "cursor:%s", req->cursor ? req->cursor : "");
    else
        snprintf(start, sizeof start, "%s", req->start_case == VIGIL__V1__SUBSCRIBE_REQUEST__START_SINCE ? "since" : "from_now");
    vigil__v1__subscribe_request__free_unpacked(req, NULL);
    uint64_t call_no = ++subscribe_calls;
    char cursor[32] = "", id[40], request_id[40];
    Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    at.seconds = (int64_t)time(NULL);
    for (long i = 0; i < subscribe_events; i++) {
        uint64_t s = ++subscribe_seq;
        snprintf(cursor, sizeof cursor, "sink-%" PRIu64, s);
        snprintf(id, sizeof id, "00000000-0000-7000-8000-%012" PRIx64, s);
        snprintf(request_id, sizeof request_id, "s%" PRIu64 "-%ld", call_no, i);
        Vigil__V1__AuditEvent ev = VIGIL__V1__AUDIT_EVENT__INIT;
        ev.id = id;
        ev.seq = s;
        ev.occurred_at = &at;
        ev.received_at = &at;
        ev.tenant = (char *)(uintptr_t) "sink";
        ev.action = (char *)(uintptr_t) "sink.subscribe";
        ev.request_id = request_id;
        ev.description = start;
        Vigil__V1__SubscribeResponse r = VIGIL__V1__SUBSCRIBE_RESPONSE__INIT;
        r.item_case = VIGIL__V1__SUBSCRIBE_RESPONSE__ITEM_EVENT;
        r.event = &ev;
        r.cursor = cursor;
        frame_out(c, FRAME_MESSAGE, 0, stream, &r.base);
    }
    Vigil__V1__Status st = VIGIL__V1__STATUS__INIT;
    Vigil__V1__Status__MetadataEntry entry = VIGIL__V1__STATUS__METADATA_ENTRY__INIT;
    Vigil__V1__Status__MetadataEntry *entries[] = {&entry};
    entry.key = (char *)(uintptr_t) "vigil.cursor";
    entry.value = cursor;
    st.code = call_no % 2 ? VIGIL_UNAVAILABLE : VIGIL_RESOURCE_EXHAUSTED;
    st.message = (char *)(uintptr_t)(call_no % 2 ? "vigil-sink: ending the subscription, as asked (resume on a new connection)"
                                                 : "vigil-sink: ending the subscription, as asked (fell behind)");
    st.n_metadata = *cursor ? 1 : 0;
    st.metadata = entries;
    frame_out(c, FRAME_TRAILERS, 0, stream, &st.base);
}

/* Whether the peer (on this host) has read everything sent on fd: our send
 * queue and its receive queue, both in /proc/net/tcp, are empty. */
static bool peer_read_all(int fd) {
    struct sockaddr_in me, peer;
    socklen_t l1 = sizeof me, l2 = sizeof peer;
    if (getsockname(fd, (struct sockaddr *)&me, &l1) != 0 || getpeername(fd, (struct sockaddr *)&peer, &l2) != 0)
        return false;
    FILE *f = fopen("/proc/net/tcp", "r");
    if (!f) return true; /* cannot tell */
    unsigned ours = 1, theirs = 1;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        unsigned lp, rp, tx, rx;
        if (sscanf(line, " %*u: %*x:%x %*x:%x %*x %x:%x", &lp, &rp, &tx, &rx) != 4) continue;
        if (lp == ntohs(me.sin_port) && rp == ntohs(peer.sin_port)) ours = tx;
        if (lp == ntohs(peer.sin_port) && rp == ntohs(me.sin_port)) theirs = rx;
    }
    fclose(f);
    return ours == 0 && theirs == 0;
}

/* Handles the frames in c->in. Returns -1 to drop the connection. */
static int serve(conn *c) {
    static vbuf inflated;
    for (;;) {
        size_t avail = c->in.len - c->in_off;
        const uint8_t *p = c->in.p + c->in_off;
        if (c->phase == 0) {
            if (avail < PREFACE_SIZE) return 0;
            if (memcmp(p, "VGIL\x01", 5) != 0) return -1;
            c->in_off += PREFACE_SIZE;
            static const uint8_t preface[PREFACE_SIZE] = {'V', 'G', 'I', 'L', 1, 0, 0, 0};
            vbuf_append(&c->out, preface, sizeof preface);
            c->phase = 1;
            continue;
        }
        if (avail < FRAME_HEADER_SIZE) return 0;
        uint32_t len = get_u32be(p);
        uint8_t type = p[4], flags = p[5];
        uint32_t stream = get_u32be(p + 6);
        if (len > DEFAULT_MAX_FRAME) return -1;
        if (avail < FRAME_HEADER_SIZE + len) {
            vbuf_reserve(&c->in, FRAME_HEADER_SIZE + len - avail);
            return 0;
        }
        const uint8_t *payload = p + FRAME_HEADER_SIZE;
        c->in_off += FRAME_HEADER_SIZE + len;
        if (c->phase == 1) {
            if (type != FRAME_HELLO) return -1;
            Vigil__V1__Welcome w = VIGIL__V1__WELCOME__INIT;
            w.server_name = "vigil-sink";
            w.server_version = VIGIL_VERSION;
            w.major_version = 1;
            w.max_frame_size = DEFAULT_MAX_FRAME;
            w.max_message_size = DEFAULT_MAX_MESSAGE;
            w.max_concurrent_calls = 256;
            w.max_batch_events = 10000;
            w.max_event_bytes = 65536;
            w.principal = "anonymous";
            frame_append_pb(&c->out, FRAME_HELLO, 0, 0, &w.base);
            c->phase = 2;
            if (goaway_after_welcome) {
                goaway_out(c, VIGIL_UNAVAILABLE, "vigil-sink: going away right after the Welcome, as asked");
                c->phase = 3;
            }
            if (ping_flood) {
                c->flood_left = ping_flood;
                c->flooding = true;
                return 0; /* read nothing more until the PINGs are written */
            }
            continue;
        }
        switch (type) {
        case FRAME_PING:
            if (vbuf_reserve(&c->out, FRAME_HEADER_SIZE + len) == 0) {
                put_frame_header(c->out.p + c->out.len, len, FRAME_PONG, 0, 0);
                memcpy(c->out.p + c->out.len + FRAME_HEADER_SIZE, payload, len);
                c->out.len += FRAME_HEADER_SIZE + len;
            }
            break;
        case FRAME_PONG:
            pongs++;
            if (c->flood_done && len < 64) { /* the last PING's: the flood's are 64 KiB */
                fprintf(stderr, "vigil-sink: %" PRIu64 " PONGs before the last PING's\n", c->flood_pongs);
                fflush(stderr);
                c->flood_done = false;
            } else if (c->flood_done) {
                c->flood_pongs++;
            }
            break;
        case FRAME_WINDOW:
        case FRAME_GOAWAY:
            break;
        case FRAME_CANCEL:
            for (int i = 0; i < c->n_calls; i++)
                if (c->calls[i].stream == stream) c->calls[i] = c->calls[--c->n_calls];
            break;
        case FRAME_HEADERS: {
            if (stream % 2 == 0 || stream <= c->highest) return -1;
            c->highest = stream;
            if (c->phase == 3) {
                status_out(c, stream, VIGIL_UNAVAILABLE, "going away");
                break;
            }
            Vigil__V1__CallHeaders *h = vigil__v1__call_headers__unpack(NULL, len, payload);
            if (!h || c->n_calls == 256) {
                if (h) vigil__v1__call_headers__free_unpacked(h, NULL);
                status_out(c, stream, VIGIL_RESOURCE_EXHAUSTED, "too many calls");
                break;
            }
            int method = strcmp(h->method, METHOD_INGEST) == 0 ? CALL_INGEST
                         : subscribe_events && strcmp(h->method, METHOD_SUBSCRIBE) == 0 ? CALL_SUBSCRIBE
                                                                                         : CALL_OTHER;
            c->calls[c->n_calls++] = (call){stream, method};
            vigil__v1__call_headers__free_unpacked(h, NULL);
            break;
        }
        case FRAME_MESSAGE: {
            int k = -1;
            for (int i = 0; i < c->n_calls; i++)
                if (c->calls[i].stream == stream) k = i;
            if (k < 0) break;
            call cl = c->calls[k];
            c->calls[k] = c->calls[--c->n_calls];
            if (cl.method == CALL_SUBSCRIBE) {
                subscribe_out(c, stream, payload, len);
                break;
            }
            if (cl.method != CALL_INGEST) {
                status_out(c, stream, VIGIL_UNIMPLEMENTED, "vigil-sink answers Ingest only");
                break;
            }
            const uint8_t *req = payload;
            size_t rlen = len;
            if (flags & FLAG_COMPRESSED) {
                if (inflate_into(&inflated, payload, len, DEFAULT_MAX_MESSAGE) != 0) {
                    status_out(c, stream, VIGIL_INVALID_ARGUMENT, "bad zlib data");
                    break;
                }
                req = inflated.p;
                rlen = inflated.len;
            }
            if (goaway_unanswered > 0 && c->phase == 2) {
                /* Accepted (last_stream_id is this call's), never answered:
                 * the connection closes once the GOAWAY is written. */
                goaway_unanswered--;
                goaway_out(c, VIGIL_UNAVAILABLE, "vigil-sink: going away, leaving this call unanswered, as asked");
                c->phase = 3;
                break;
            }
            long n = count_events(req, rlen);
            c->answered++;
            if (n <= 0) {
                status_out(c, stream, VIGIL_INVALID_ARGUMENT, "not an IngestRequest with events");
                break;
            }
            if (fail_every && c->answered % (uint64_t)fail_every == 0) {
                if (retry_after) {
                    Vigil__V1__Status st = VIGIL__V1__STATUS__INIT;
                    Vigil__V1__Status__MetadataEntry entry = VIGIL__V1__STATUS__METADATA_ENTRY__INIT;
                    Vigil__V1__Status__MetadataEntry *entries[] = {&entry};
                    entry.key = (char *)(uintptr_t) "vigil.retry-after-ms";
                    entry.value = (char *)(uintptr_t)retry_after;
                    st.code = VIGIL_UNAVAILABLE;
                    st.message = (char *)(uintptr_t) "vigil-sink: a transient failure, as asked";
                    st.n_metadata = 1;
                    st.metadata = entries;
                    frame_out(c, FRAME_TRAILERS, 0, stream, &st.base);
                } else {
                    status_out(c, stream, VIGIL_UNAVAILABLE, "vigil-sink: a transient failure, as asked");
                }
                break;
            }
            Vigil__V1__IngestResponse r = VIGIL__V1__INGEST_RESPONSE__INIT;
            Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
            if (received_at) {
                at.seconds = strtoll(received_at, NULL, 10);
                r.received_at = &at;
            }
            r.first_seq = seq + 1;
            r.last_seq = seq + (uint64_t)n;
            r.count = (uint32_t)n;
            seq += (uint64_t)n;
            total_events += (uint64_t)n;
            total_batches++;
            total_bytes += len;
            frame_out(c, FRAME_MESSAGE, 0, stream, &r.base);
            status_out(c, stream, VIGIL_OK, "");
            if (ping_every && c->answered % (uint64_t)ping_every == 0) {
                Vigil__V1__Ping ping = VIGIL__V1__PING__INIT;
                ping.opaque = c->answered;
                frame_out(c, FRAME_PING, 0, 0, &ping.base);
                pings++;
            }
            if (goaway_after && c->answered >= (uint64_t)goaway_after && c->phase == 2) {
                goaway_out(c, VIGIL_UNAVAILABLE, "vigil-sink: going away, as asked");
                c->phase = 3;
            }
            break;
        }
        default:
            goaway_out(c, VIGIL_INVALID_ARGUMENT, "unexpected frame");
            return -1;
        }
    }
}

int main(int argc, char **argv) {
    const char *listen_at = "127.0.0.1:0";
    double run_for = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--compress")) compress_responses = true;
        else if (i + 1 < argc && !strcmp(argv[i], "--listen")) listen_at = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--ping-every")) ping_every = atol(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--goaway-after")) goaway_after = atol(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--fail-every")) fail_every = atol(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--retry-after")) retry_after = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--for")) run_for = atof(argv[++i]);
        else if (!strcmp(argv[i], "--goaway-after-welcome")) goaway_after_welcome = true;
        else if (i + 1 < argc && !strcmp(argv[i], "--ping-flood")) ping_flood = atol(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--received-at")) received_at = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--subscribe-events")) subscribe_events = atol(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--goaway-unanswered")) goaway_unanswered = atol(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--listen HOST:PORT] [--ping-every N] [--compress] [--goaway-after N] "
                            "[--fail-every N [--retry-after MS]] [--for SECONDS] [--goaway-after-welcome] "
                            "[--ping-flood N] [--received-at SECONDS] [--subscribe-events N] [--goaway-unanswered N]\n", argv[0]);
            return 2;
        }
    }
    if (subscribe_events < 0 || subscribe_events > 8) {
        fprintf(stderr, "--subscribe-events: 0 to 8 (the default window; credit is not counted)\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    char host[256], port[16];
    if (parse_address(listen_at, host, sizeof host, port, sizeof port) != 0 && strcmp(listen_at, "127.0.0.1:0") != 0) {
        fprintf(stderr, "bad --listen\n");
        return 2;
    }
    if (strcmp(listen_at, "127.0.0.1:0") == 0) {
        strcpy(host, "127.0.0.1");
        strcpy(port, "0");
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ping_flood) {
        /* Little room for the PONGs in this direction: what the client cannot
         * send stays in its own memory. (Inherited by accepted sockets.) */
        int small = 16384;
        setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(lfd, 64) != 0) {
        perror("listen");
        return 1;
    }
    socklen_t sl = sizeof sa;
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    fprintf(stderr, "vigil-sink listening on %s:%d\n", host, ntohs(sa.sin_port));
    fflush(stderr);
    enum { MAXC = 64 };
    conn *conns[MAXC] = {0};
    double end = run_for > 0 ? (double)time(NULL) + run_for : 0;
    while (!stop && (!end || (double)time(NULL) < end)) {
        struct pollfd pfd[MAXC + 1];
        int map[MAXC + 1], n = 0;
        pfd[n] = (struct pollfd){.fd = lfd, .events = POLLIN};
        map[n++] = -1;
        for (int i = 0; i < MAXC; i++) {
            if (!conns[i]) continue;
            bool pending = conns[i]->out_off < conns[i]->out.len || (conns[i]->flooding && !conns[i]->flood_done);
            pfd[n] = (struct pollfd){.fd = conns[i]->fd,
                                     .events = (short)((conns[i]->flooding ? 0 : POLLIN) | (pending ? POLLOUT : 0))};
            map[n++] = i;
        }
        bool awaiting = false; /* --ping-flood: checking whether the client read everything */
        for (int i = 0; i < MAXC; i++) awaiting |= conns[i] && conns[i]->flooding && conns[i]->flood_done;
        if (poll(pfd, (nfds_t)n, awaiting ? 10 : 200) < 0) continue;
        if (pfd[0].revents & POLLIN) {
            int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd >= 0) {
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                int slot = -1;
                for (int i = 0; i < MAXC && slot < 0; i++)
                    if (!conns[i]) slot = i;
                if (slot < 0) close(fd);
                else {
                    conns[slot] = calloc(1, sizeof(conn));
                    conns[slot]->fd = fd;
                }
            }
        }
        for (int k = 1; k < n; k++) {
            conn *c = conns[map[k]];
            bool drop = false;
            if (c->flooding && (pfd[k].revents & (POLLHUP | POLLERR))) drop = true;
            if (!c->flooding && (pfd[k].revents & (POLLIN | POLLHUP | POLLERR))) {
                if (c->in_off == c->in.len) c->in.len = c->in_off = 0;
                vbuf_reserve(&c->in, 1 << 16);
                ssize_t r = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len, 0);
                if (r > 0) {
                    c->in.len += (size_t)r;
                    if (serve(c) != 0) drop = true;
                    if (c->in_off > (1u << 20)) {
                        memmove(c->in.p, c->in.p + c->in_off, c->in.len - c->in_off);
                        c->in.len -= c->in_off;
                        c->in_off = 0;
                    }
                } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                    drop = true;
                }
            }
            /* --ping-flood: keep about 1 MiB of PINGs queued, then the last one. */
            if (c->flooding && c->out_off > (1u << 20)) {
                memmove(c->out.p, c->out.p + c->out_off, c->out.len - c->out_off);
                c->out.len -= c->out_off;
                c->out_off = 0;
            }
            while (c->flooding && c->out.len - c->out_off < (1u << 20)) {
                static uint8_t big[FRAME_HEADER_SIZE + 65536];
                if (c->flood_left > 0) {
                    /* Ping{} with 65,532 bytes of an unknown field 15 (0x7a, length 0xfc 0xff 0x03) */
                    uint8_t *q = big + FRAME_HEADER_SIZE;
                    q[0] = 0x7a, q[1] = 0xfc, q[2] = 0xff, q[3] = 0x03;
                    put_frame_header(big, 65536, FRAME_PING, 0, 0);
                    vbuf_append(&c->out, big, sizeof big);
                    c->flood_left--;
                } else if (!c->flood_done) {
                    Vigil__V1__Ping last = VIGIL__V1__PING__INIT;
                    last.opaque = 1;
                    frame_out(c, FRAME_PING, 0, 0, &last.base);
                    c->flood_done = true;
                } else {
                    break;
                }
                pings++;
            }
            while (!drop && c->out_off < c->out.len) {
                ssize_t w = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
                if (w > 0) c->out_off += (size_t)w;
                else if (w < 0 && (errno == EAGAIN || errno == EINTR)) break;
                else drop = true;
            }
            if (c->out_off == c->out.len) c->out.len = c->out_off = 0;
            /* Every PING is read by the client: read its PONGs. */
            if (c->flooding && c->flood_done && c->out.len == 0 && peer_read_all(c->fd)) c->flooding = false;
            if (c->phase == 3 && c->n_calls == 0 && c->out.len == 0) drop = true; /* drained */
            if (drop) {
                close(c->fd);
                vbuf_free(&c->in);
                vbuf_free(&c->out);
                free(c);
                conns[map[k]] = NULL;
            }
        }
    }
    for (int i = 0; i < MAXC; i++)
        if (conns[i]) {
            close(conns[i]->fd);
            vbuf_free(&conns[i]->in);
            vbuf_free(&conns[i]->out);
            free(conns[i]);
        }
    fprintf(stderr, "vigil-sink: %" PRIu64 " events in %" PRIu64 " batches, %" PRIu64 " payload bytes; %" PRIu64
                    " pings, %" PRIu64 " pongs\n",
            total_events, total_batches, total_bytes, pings, pongs);
    return 0;
}

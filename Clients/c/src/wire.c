/* The connection: TCP, preface, HELLO/Welcome, frame reading and writing. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const uint8_t preface[PREFACE_SIZE] = {'V', 'G', 'I', 'L', 1, 0, 0, 0};

void vconn_init(vconn *c) {
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->cancel_fd = -1;
}

void vconn_close(vconn *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    vbuf_free(&c->in);
    vbuf_free(&c->inflated);
    c->in_off = 0;
    c->goaway = false;
    arena_reset(&c->welcome_mem);
}

int frame_append_pb(vbuf *b, uint8_t type, uint8_t flags, uint32_t stream, const ProtobufCMessage *m) {
    size_t n = m ? protobuf_c_message_get_packed_size(m) : 0;
    if (n > UINT32_MAX || vbuf_reserve(b, FRAME_HEADER_SIZE + n) != 0) return -1;
    put_frame_header(b->p + b->len, (uint32_t)n, type, flags, stream);
    if (m) protobuf_c_message_pack(m, b->p + b->len + FRAME_HEADER_SIZE);
    b->len += FRAME_HEADER_SIZE + n;
    return 0;
}

static int poll_timeout(int64_t deadline_ms) {
    if (!deadline_ms) return -1;
    int64_t left = deadline_ms - mono_ms();
    if (left < 0) left = 0;
    return left > 1000000 ? 1000000 : (int)left;
}

/* Waits for `events` on fd until the deadline: 1 ready (or an error for the
 * next I/O to report), 0 timed out, -1 cancel_fd readable (cancelled), -2
 * poll failed. */
static int wait_fd(int fd, short events, int cancel_fd, int64_t deadline_ms) {
    for (;;) {
        struct pollfd pfd[2] = {{.fd = fd, .events = events}, {.fd = cancel_fd, .events = POLLIN}};
        int r = poll(pfd, cancel_fd >= 0 ? 2 : 1, poll_timeout(deadline_ms));
        if (r > 0 && cancel_fd >= 0 && pfd[1].revents) return -1;
        if (r > 0) return 1;
        if (r == 0) return 0;
        if (errno != EINTR) return -2;
    }
}

int vconn_write_all(vconn *c, const uint8_t *p, size_t n, int64_t deadline_ms) {
    while (n) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int r = wait_fd(c->fd, POLLOUT, c->cancel_fd, deadline_ms);
            if (r == 0) return VIGIL_ERR_TIMEOUT;
            if (r == -1) return VIGIL_ERR_STOPPED;
            if (r < 0) return VIGIL_ERR_CLOSED;
            continue;
        }
        return VIGIL_ERR_CLOSED;
    }
    return 0;
}

int vconn_wait_readable(vconn *c, int64_t deadline_ms) {
    int r = wait_fd(c->fd, POLLIN, c->cancel_fd, deadline_ms);
    return r == -2 ? 1 : r; /* a failed poll: let the read report the error */
}

int vconn_fill(vconn *c) {
    if (c->in_off && c->in_off == c->in.len) {
        c->in.len = c->in_off = 0;
    } else if (c->in_off > 65536 && c->in_off * 2 > c->in.len) {
        memmove(c->in.p, c->in.p + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in_off = 0;
    }
    if (vbuf_reserve(&c->in, 65536) != 0) return -1;
    for (;;) {
        ssize_t r = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len, 0);
        if (r > 0) {
            c->in.len += (size_t)r;
            return 1;
        }
        if (r == 0) return -1;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        return -1;
    }
}

int vconn_next(vconn *c, vframe *f, char *err, size_t errsize) {
    size_t avail = c->in.len - c->in_off;
    if (avail < FRAME_HEADER_SIZE) return 0;
    const uint8_t *h = c->in.p + c->in_off;
    uint32_t len = get_u32be(h);
    uint8_t type = h[4], flags = h[5];
    uint32_t stream = get_u32be(h + 6) ;
    if (type < FRAME_HELLO || type > FRAME_GOAWAY) {
        snprintf(err, errsize, "unknown frame type 0x%02x", type);
        return -1;
    }
    if (flags & ~(type == FRAME_MESSAGE ? (FLAG_END_STREAM | FLAG_COMPRESSED) : 0)) {
        snprintf(err, errsize, "flags 0x%02x not allowed on frame type 0x%02x", flags, type);
        return -1;
    }
    if (len > c->max_recv_frame) {
        snprintf(err, errsize, "a frame of %u bytes exceeds this client's max_frame_size of %u", len,
                 c->max_recv_frame);
        return -1;
    }
    if (avail - FRAME_HEADER_SIZE < len) {
        /* Make room for the whole frame at once. */
        if (vbuf_reserve(&c->in, len + FRAME_HEADER_SIZE - avail) != 0) {
            snprintf(err, errsize, "out of memory for a frame of %u bytes", len);
            return -1;
        }
        return 0;
    }
    f->type = type;
    f->flags = flags;
    f->stream = stream;
    f->payload = h + FRAME_HEADER_SIZE;
    f->len = len;
    c->in_off += FRAME_HEADER_SIZE + len;
    if (flags & FLAG_COMPRESSED) {
        if (inflate_into(&c->inflated, f->payload, f->len, c->max_message) != 0) {
            snprintf(err, errsize, "a COMPRESSED payload is not valid zlib data or inflates past %u bytes",
                     c->max_message);
            return -1;
        }
        f->payload = c->inflated.p;
        f->len = c->inflated.len;
        f->flags &= (uint8_t)~FLAG_COMPRESSED;
    }
    return 1;
}

/* Reads one frame, blocking until the deadline. 1, 0 (timeout), -1 (closed),
 * -2 (protocol error in err), -3 (cancelled). */
static int read_frame_blocking(vconn *c, vframe *f, int64_t deadline, char *err, size_t errsize) {
    for (;;) {
        int r = vconn_next(c, f, err, errsize);
        if (r == 1) return 1;
        if (r < 0) return -2;
        int w = vconn_wait_readable(c, deadline);
        if (w == 0) return 0;
        if (w < 0) return -3;
        if (vconn_fill(c) < 0) return -1;
    }
}

static int connect_tcp(const char *address, int cancel_fd, int64_t deadline, vstatus *st) {
    char host[256], port[16];
    if (parse_address(address, host, sizeof host, port, sizeof port) != 0) {
        status_set(st, VIGIL_ERR_ARGUMENT, "bad address '%s': expected HOST:PORT or [IPv6]:PORT", address);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        status_set(st, VIGIL_ERR_CONNECT, "cannot resolve '%s': %s", host, gai_strerror(gai));
        return -1;
    }
    int fd = -1, last_errno = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        int r = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (r != 0 && errno == EINPROGRESS) {
            int pr = wait_fd(fd, POLLOUT, cancel_fd, deadline);
            if (pr == -1) {
                close(fd);
                freeaddrinfo(res);
                status_set(st, VIGIL_ERR_STOPPED, "connecting to %s: cancelled", address);
                return -1;
            }
            if (pr == 0) {
                last_errno = ETIMEDOUT;
            } else {
                int soerr = 0;
                socklen_t sl = sizeof soerr;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
                if (soerr == 0) r = 0;
                else last_errno = soerr;
            }
        } else if (r != 0) {
            last_errno = errno;
        }
        if (r == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        status_set(st, VIGIL_ERR_CONNECT, "cannot connect to %s: %s", address, strerror(last_errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    return fd;
}

static void store_welcome(vconn *c, const Vigil__V1__Welcome *w) {
    arena_reset(&c->welcome_mem);
    vigil_welcome *o = &c->welcome;
    o->server_name = arena_strdup(&c->welcome_mem, w->server_name ? w->server_name : "");
    o->server_version = arena_strdup(&c->welcome_mem, w->server_version ? w->server_version : "");
    o->principal = arena_strdup(&c->welcome_mem, w->principal ? w->principal : "");
    if (!o->server_name) o->server_name = "";
    if (!o->server_version) o->server_version = "";
    if (!o->principal) o->principal = "";
    o->max_frame_size = w->max_frame_size ? w->max_frame_size : DEFAULT_MAX_FRAME;
    o->max_message_size = w->max_message_size ? w->max_message_size : DEFAULT_MAX_MESSAGE;
    o->max_concurrent_calls = w->max_concurrent_calls ? w->max_concurrent_calls : 128;
    o->max_batch_events = w->max_batch_events ? w->max_batch_events : 10000;
    o->max_event_bytes = w->max_event_bytes;
}

int vconn_open(vconn *c, const vigil_options *o, vstatus *st) {
    vconn_close(c);
    int64_t deadline = mono_ms() + (o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 5000);
    const char *address = env_or(o->address, "VIGIL_SERVER", "127.0.0.1:7700");
    int fd = connect_tcp(address, c->cancel_fd, deadline, st);
    if (fd < 0) return st->pub.code;
    c->fd = fd;
    c->max_recv_frame = o->max_frame_size ? o->max_frame_size : DEFAULT_MAX_FRAME;
    if (c->max_recv_frame < MIN_CLIENT_FRAME) c->max_recv_frame = MIN_CLIENT_FRAME;
    c->max_message = o->max_message_size ? o->max_message_size : DEFAULT_MAX_MESSAGE;
    c->next_stream = 1;
    c->goaway = false;

    /* Preface and HELLO in one write. */
    Vigil__V1__Hello hello = VIGIL__V1__HELLO__INIT;
    hello.major_version = 1;
    hello.minor_version = 0;
    hello.client_name = (char *)(uintptr_t)(o->client_name ? o->client_name : "vigil-c/" VIGIL_VERSION);
    hello.auth_token = (char *)(uintptr_t)env_or(o->token, "VIGIL_TOKEN", "");
    hello.max_frame_size = c->max_recv_frame;
    vbuf out = {0};
    if (vbuf_append(&out, preface, sizeof preface) != 0 ||
        frame_append_pb(&out, FRAME_HELLO, 0, 0, &hello.base) != 0) {
        vbuf_free(&out);
        status_set(st, VIGIL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    int w = vconn_write_all(c, out.p, out.len, deadline);
    vbuf_free(&out);
    if (w != 0) {
        status_set(st, w == VIGIL_ERR_TIMEOUT || w == VIGIL_ERR_STOPPED ? w : VIGIL_ERR_CONNECT,
                   "cannot send the preface to %s: %s", address,
                   w == VIGIL_ERR_TIMEOUT ? "timed out" : w == VIGIL_ERR_STOPPED ? "cancelled" : "connection closed");
        goto fail;
    }

    /* The server's preface. */
    while (c->in.len < PREFACE_SIZE) {
        int ready = vconn_wait_readable(c, deadline);
        if (ready < 0) {
            status_set(st, VIGIL_ERR_STOPPED, "handshake with %s: cancelled", address);
            goto fail;
        }
        if (ready == 0) {
            status_set(st, VIGIL_ERR_TIMEOUT, "no preface from %s within the connect timeout", address);
            goto fail;
        }
        if (vconn_fill(c) < 0) {
            if (c->in.len >= 4 && memcmp(c->in.p, "HTTP", 4) == 0)
                status_set(st, VIGIL_ERR_PROTOCOL, "%s answered in HTTP, not the Vigil protocol", address);
            else
                status_set(st, VIGIL_ERR_CONNECT, "%s closed the connection during the handshake", address);
            goto fail;
        }
    }
    if (memcmp(c->in.p, "VGIL", 4) != 0) {
        status_set(st, VIGIL_ERR_PROTOCOL, "%s does not speak the Vigil protocol (no VGIL preface)", address);
        goto fail;
    }
    bool major_ok = c->in.p[4] == 1;
    c->in_off = PREFACE_SIZE;

    /* Welcome, or GOAWAY. */
    vframe f;
    char err[200];
    int r = read_frame_blocking(c, &f, deadline, err, sizeof err);
    if (r == 0) {
        status_set(st, VIGIL_ERR_TIMEOUT, "no Welcome from %s within the connect timeout", address);
        goto fail;
    }
    if (r == -3) {
        status_set(st, VIGIL_ERR_STOPPED, "handshake with %s: cancelled", address);
        goto fail;
    }
    if (r == -1) {
        status_set(st, major_ok ? VIGIL_ERR_CONNECT : VIGIL_ERR_PROTOCOL,
                   "%s closed the connection during the handshake%s", address,
                   major_ok ? "" : " (it speaks another major version)");
        goto fail;
    }
    if (r == -2) {
        status_set(st, VIGIL_ERR_PROTOCOL, "handshake with %s: %s", address, err);
        goto fail;
    }
    if (f.type == FRAME_GOAWAY && f.stream == 0) {
        Vigil__V1__GoAway *g = vigil__v1__go_away__unpack(NULL, f.len, f.payload);
        if (!g) {
            status_set(st, VIGIL_ERR_PROTOCOL, "handshake with %s: malformed GOAWAY", address);
            goto fail;
        }
        status_set(st, g->code ? (int)g->code : VIGIL_UNAVAILABLE, "%s", g->message ? g->message : "");
        vigil__v1__go_away__free_unpacked(g, NULL);
        goto fail;
    }
    if (f.type != FRAME_HELLO || f.stream != 0) {
        status_set(st, VIGIL_ERR_PROTOCOL, "handshake with %s: expected HELLO, got frame type 0x%02x", address,
                   f.type);
        goto fail;
    }
    Vigil__V1__Welcome *wel = vigil__v1__welcome__unpack(NULL, f.len, f.payload);
    if (!wel) {
        status_set(st, VIGIL_ERR_PROTOCOL, "handshake with %s: malformed Welcome", address);
        goto fail;
    }
    store_welcome(c, wel);
    vigil__v1__welcome__free_unpacked(wel, NULL);
    if (!c->welcome.server_name) {
        status_set(st, VIGIL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    status_reset(st);
    return VIGIL_OK;
fail:
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->in.len = c->in_off = 0;
    return st->pub.code;
}

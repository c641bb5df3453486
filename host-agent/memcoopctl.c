// SPDX-License-Identifier: GPL-2.0-only
/*
 * memcoopctl: the operator's command line for memcoopd.
 *
 * Exit codes: 0 done; 1 memcoopd refused or failed the request; 2 usage;
 * 3 memcoopd not reachable; 4 permission denied; 5 no such guest.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "io.h"
#include "memcoopd.h"
#include "memcoopd_ctl.h"

#define EX_OK		0
#define EX_FAIL		1
#define EX_USAGE	2
#define EX_NODAEMON	3
#define EX_PERM		4
#define EX_NOGUEST	5

#define CTL_TIMEOUT_DEFAULT	10	/* s */

static const char	*sock_path = MEMCOOPD_SOCK;
static int		 json_out;
static int		 timeout_s = CTL_TIMEOUT_DEFAULT;	/* 0: none */
static int		 sock_fd = -1;
static uint32_t		 seq;

struct cmd {
	const char	*name;
	int		(*fn)(int, char **);
	const char	*args;
	const char	*help;
};

static int	ctl_status(int, char **);
static int	ctl_set(int, char **);
static int	ctl_watch(int, char **);
static int	ctl_ksm(int, char **);
static int	ctl_stop(int, char **);
static int	ctl_explain(int, char **);

static const struct cmd cmds[] = {
	{ "status",	ctl_status,	"[GUEST]",
	    "show the host and every guest (or one)" },
	{ "set",	ctl_set,	"[--dry-run] GUEST target|min|max|weight|mode VALUE",
	    "change a guest's settings (root); --dry-run only shows the\n"
	    "      target the next tick would choose with it" },
	{ "explain",	ctl_explain,	"GUEST",
	    "why the guest's target last changed and why it is not moving now" },
	{ "watch",	ctl_watch,	"[GUEST]",
	    "show the status live, once per tick" },
	{ "ksm",	ctl_ksm,	"status|on|off|auto",
	    "show or set host page merging (changes: root)" },
	{ "stop",	ctl_stop,	"[--restore]",
	    "stop memcoopd; guests stay where they are for the next memcoopd,\n"
	    "      or with --restore get their memory back, paced (root)" },
	{ NULL, NULL, NULL, NULL }
};

static void __attribute__((noreturn))
usage(void)
{
	const struct cmd *c;

	fprintf(stderr, "usage: memcoopctl [-j] [-s socket] [-t seconds] "
	    "command [args]\n"
	    "  -j, --json         machine-readable output (read commands)\n"
	    "  -s, --socket PATH  memcoopd's control socket (default %s)\n"
	    "  -t, --timeout S    give up when memcoopd does not answer within "
	    "S seconds\n"
	    "                     (default %d; 0 waits forever; watch waits "
	    "forever after\n"
	    "                     its first answer)\n"
	    "commands:\n", MEMCOOPD_SOCK, CTL_TIMEOUT_DEFAULT);
	for (c = cmds; c->name != NULL; c++)
		fprintf(stderr, "  %s %s\n      %s\n", c->name, c->args,
		    c->help);
	fprintf(stderr, "sizes: 1536M, 2G, or bytes; modes: auto, fixed, "
	    "manual; weight: 1..%d; min/max: none unsets\n", GUEST_WEIGHT_MAX);
	exit(EX_USAGE);
}

/* ------------------------------------------------------------------ */
/* Talking to memcoopd */

/* Bound every send and receive on the socket (and the connect) to @s. */
static void
set_timeout(int fd, int s)
{
	struct timeval tv = { s, 0 };

	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void __attribute__((noreturn))
lost(void)
{
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINPROGRESS)
		fprintf(stderr, "memcoopctl: memcoopd did not answer within "
		    "%d s (-t to wait longer)\n", timeout_s);
	else
		fprintf(stderr, "memcoopctl: memcoopd closed the connection\n");
	exit(EX_NODAEMON);
}

static int
send_req(uint32_t type, json_t *obj)
{
	struct mcctl_hdr h;
	char *s = json_dumps(obj, JSON_COMPACT);
	int rv = -1;

	json_decref(obj);
	if (s == NULL)
		return -1;
	if (mcctl_hdr_init(&h, type, ++seq, strlen(s)) == 0 &&
	    io_full(sock_fd, &h, sizeof(h), 1) == 0 &&
	    io_full(sock_fd, s, h.len, 1) == 0)
		rv = 0;
	free(s);
	return rv;
}

/* One message from memcoopd; NULL on EOF or a protocol error. */
static json_t *
recv_msg(uint32_t *type)
{
	struct mcctl_hdr h;
	const char *payload, *err;
	char *buf;
	json_t *o;
	ssize_t n;

	if (io_full(sock_fd, &h, sizeof(h), 0) == -1)
		return NULL;
	if (h.magic != MCCTL_MAGIC || h.version != MCCTL_VERSION ||
	    h.len > MCCTL_MAX_PAYLOAD) {
		fprintf(stderr, "memcoopctl: bad reply header from memcoopd\n");
		return NULL;
	}
	if ((buf = malloc(sizeof(h) + h.len)) == NULL)
		return NULL;
	memcpy(buf, &h, sizeof(h));
	if (io_full(sock_fd, buf + sizeof(h), h.len, 0) == -1) {
		free(buf);
		return NULL;
	}
	n = mcctl_parse(buf, sizeof(h) + h.len, &h, &payload, &err);
	if (n <= 0) {
		fprintf(stderr, "memcoopctl: bad reply from memcoopd: %s\n",
		    err != NULL ? err : "truncated");
		free(buf);
		return NULL;
	}
	o = json_loadb(payload, h.len, 0, NULL);
	free(buf);
	if (!json_is_object(o)) {
		json_decref(o);
		fprintf(stderr, "memcoopctl: reply is not a JSON object\n");
		return NULL;
	}
	*type = h.type;
	return o;
}

static int
error_exit(json_t *reply)
{
	const char *msg = json_string_value(json_object_get(reply, "error"));
	int code = (int)json_integer_value(json_object_get(reply, "code"));

	fprintf(stderr, "memcoopctl: %s\n", msg != NULL ? msg : "error");
	if (code == EPERM)
		return EX_PERM;
	if (code == ENOENT)
		return EX_NOGUEST;
	return EX_FAIL;
}

/* Connect and say hello; exits on failure. */
static void
ctl_connect(void)
{
	struct sockaddr_un sun;
	uint32_t type;
	json_t *r;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(sock_path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "memcoopctl: socket path too long\n");
		exit(EX_USAGE);
	}
	strcpy(sun.sun_path, sock_path);
	if ((sock_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) != -1 &&
	    timeout_s > 0)
		set_timeout(sock_fd, timeout_s);
	if (sock_fd == -1 ||
	    connect(sock_fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		int e = errno;

		if (e == EAGAIN || e == EINPROGRESS)
			lost();
		fprintf(stderr, "memcoopctl: cannot reach memcoopd at %s: %s\n",
		    sock_path, strerror(e));
		if (e == ENOENT || e == ECONNREFUSED)
			fprintf(stderr, "memcoopctl: is memcoopd running? "
			    "(systemctl status memcoopd)\n");
		else if (e == EACCES)
			fprintf(stderr, "memcoopctl: reading needs root or "
			    "membership in memcoopd's socket-group\n");
		exit(e == EACCES ? EX_PERM : EX_NODAEMON);
	}
	if (send_req(MCCTL_HELLO, json_pack("{s:i, s:s}", "version",
	    MCCTL_VERSION, "client", "memcoopctl")) == -1 ||
	    (r = recv_msg(&type)) == NULL)
		lost();
	if (type != MCCTL_R_OK) {
		int rc = error_exit(r);

		json_decref(r);
		exit(rc);
	}
	json_decref(r);
}

/* Send a request, wait for its reply; exits on an error reply. */
static json_t *
request(uint32_t type, json_t *obj)
{
	uint32_t rtype;
	json_t *r;

	ctl_connect();
	if (send_req(type, obj) == -1 || (r = recv_msg(&rtype)) == NULL)
		lost();
	if (rtype == MCCTL_R_ERROR) {
		int rc = error_exit(r);

		json_decref(r);
		exit(rc);
	}
	return r;
}

/* ------------------------------------------------------------------ */
/* Output */

static json_int_t
geti(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static const char *
gets_(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s != NULL ? s : "-";
}

static const char *
size_str(json_int_t b, char *buf, size_t len)
{
	double v = (double)b;

	if (b <= 0)
		snprintf(buf, len, "-");
	else if (b >= (json_int_t)(10ULL << 30))
		snprintf(buf, len, "%.1fG", v / (1 << 30));
	else
		snprintf(buf, len, "%.0fM", v / (1 << 20));
	return buf;
}

static void
print_ksm_line(json_t *k)
{
	char a[32], b[32];

	if (k == NULL || strcmp(gets_(k, "mode"), "unmanaged") == 0) {
		printf("ksm: not managed by memcoopd\n");
		return;
	}
	printf("ksm: %s (%s, ksmd %s), saving %s, estimate %s, "
	    "pages_to_scan %lld\n", gets_(k, "mode"), gets_(k, "phase"),
	    json_is_true(json_object_get(k, "run")) ? "running" : "stopped",
	    size_str(geti(k, "saving_bytes"), a, sizeof(a)),
	    size_str(geti(k, "estimate_bytes"), b, sizeof(b)),
	    (long long)geti(k, "pages_to_scan"));
}

static void
print_status(json_t *st)
{
	json_t *h = json_object_get(st, "host"), *gs, *g;
	char b1[32], b2[32], b3[32], b4[32], b5[32], b6[32];
	size_t i;

	printf("host: MemAvailable %s of %s (floor %s), memory PSI some %.2f%% "
	    "full %.2f%%, automatic mode %s\n",
	    size_str(geti(h, "mem_available"), b1, sizeof(b1)),
	    size_str(geti(h, "mem_total"), b2, sizeof(b2)),
	    size_str(geti(h, "floor"), b3, sizeof(b3)),
	    json_real_value(json_object_get(h, "psi_some_avg10")),
	    json_real_value(json_object_get(h, "psi_full_avg10")),
	    json_is_true(json_object_get(st, "auto")) ? "on" : "off");
	print_ksm_line(json_object_get(st, "ksm"));
	gs = json_object_get(st, "guests");
	if (json_array_size(gs) == 0) {
		printf("no guests\n");
		return;
	}
	printf("%-16s %-7s %-6s %7s %7s %7s %-15s %4s %-8s %6s  %s\n",
	    "GUEST", "STATE", "MODE", "TARGET", "ACTUAL", "USABLE", "LIMITS",
	    "W", "PRESSURE", "KSM", "LAST CHANGE");
	json_array_foreach(gs, i, g) {
		char lim[40];

		snprintf(lim, sizeof(lim), "%s..%s",
		    size_str(geti(g, "limit_lo"), b4, sizeof(b4)),
		    size_str(geti(g, "limit_hi"), b5, sizeof(b5)));
		printf("%-16s %-7s %-6s %7s %7s %7s %-15s %4lld %-8s %6s  %s\n",
		    gets_(g, "name"), gets_(g, "state"), gets_(g, "mode"),
		    size_str(geti(g, "target"), b1, sizeof(b1)),
		    size_str(geti(g, "actual"), b2, sizeof(b2)),
		    size_str(geti(g, "usable"), b3, sizeof(b3)), lim,
		    (long long)geti(g, "weight"), gets_(g, "pressure"),
		    size_str(geti(g, "ksm_saving"), b6, sizeof(b6)),
		    gets_(g, "reason")[0] ? gets_(g, "reason") : "-");
	}
}

static void
print_json(json_t *o)
{
	char *s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);

	if (s != NULL) {
		puts(s);
		free(s);
	}
}

/* ------------------------------------------------------------------ */
/* Commands */

static int
ctl_status(int argc, char **argv)
{
	json_t *r;

	if (argc > 2)
		usage();
	r = request(MCCTL_STATUS, argc == 2 ?
	    json_pack("{s:s}", "guest", argv[1]) : json_object());
	if (json_out)
		print_json(r);
	else
		print_status(r);
	json_decref(r);
	return EX_OK;
}

static int
ctl_set(int argc, char **argv)
{
	static const char *keys[] = { "target", "min", "max", "weight",
	    "mode", NULL };
	const char **k;
	json_t *r;
	int dry = 0;

	if (argc == 5 && strcmp(argv[1], "--dry-run") == 0) {
		dry = 1;
		argc--;
		argv++;
	}
	if (argc != 4)
		usage();
	for (k = keys; *k != NULL; k++)
		if (strcmp(*k, argv[2]) == 0)
			break;
	if (*k == NULL) {
		fprintf(stderr, "memcoopctl: set: unknown setting \"%s\" "
		    "(target, min, max, weight, mode)\n", argv[2]);
		return EX_USAGE;
	}
	r = request(dry ? MCCTL_PREVIEW : MCCTL_SET, json_pack("{s:s, s:s, s:s}",
	    "guest", argv[1], "key", argv[2], "value", argv[3]));
	if (json_out) {
		print_json(r);
	} else if (dry) {
		char b1[32], b2[32];

		printf("%s: with %s %s (mode %s) the next tick would %s %s\n",
		    gets_(r, "name"), argv[2], argv[3], gets_(r, "mode"),
		    json_is_true(json_object_get(r, "changed")) ?
		    "set the target to" : "leave the target at",
		    size_str(geti(r, "target"), b1, sizeof(b1)));
		if (json_is_true(json_object_get(r, "changed")))
			printf("  from %s: %s\n", size_str(geti(r, "target_now"),
			    b2, sizeof(b2)), gets_(r, "reason"));
		printf("  policy: %s\n", gets_(r, "explain"));
		printf("  nothing was changed\n");
	} else {
		char b1[32], b2[32], b3[32];

		printf("%s: mode %s, target %s, limits %s..%s, weight %lld\n",
		    gets_(r, "name"), gets_(r, "mode"),
		    size_str(geti(r, "target"), b1, sizeof(b1)),
		    size_str(geti(r, "limit_lo"), b2, sizeof(b2)),
		    size_str(geti(r, "limit_hi"), b3, sizeof(b3)),
		    (long long)geti(r, "weight"));
	}
	json_decref(r);
	return EX_OK;
}

static int
ctl_explain(int argc, char **argv)
{
	char b1[32], b2[32], b3[32], b4[32];
	json_t *r;

	if (argc != 2)
		usage();
	r = request(MCCTL_EXPLAIN, json_pack("{s:s}", "guest", argv[1]));
	if (json_out) {
		print_json(r);
		json_decref(r);
		return EX_OK;
	}
	printf("%s: mode %s%s, target %s, actual %s, limits %s..%s\n",
	    gets_(r, "name"), gets_(r, "mode"),
	    json_is_true(json_object_get(r, "auto")) ? "" :
	    " (automatic mode off)",
	    size_str(geti(r, "target"), b1, sizeof(b1)),
	    size_str(geti(r, "actual"), b2, sizeof(b2)),
	    size_str(geti(r, "limit_lo"), b3, sizeof(b3)),
	    size_str(geti(r, "limit_hi"), b4, sizeof(b4)));
	if (geti(r, "last_change_ago_ms") >= 0)
		printf("last change %.0fs ago: %s\n",
		    (double)geti(r, "last_change_ago_ms") / 1000.0,
		    gets_(r, "last_reason"));
	else
		printf("last change: none\n");
	printf("now: %s\n", gets_(r, "now"));
	printf("hold %.0fs left, stall-hold %.0fs left, calm %lld of %lld "
	    "ticks, last stall %s\n",
	    (double)geti(r, "hold_left_ms") / 1000.0,
	    (double)geti(r, "stall_hold_left_ms") / 1000.0,
	    (long long)geti(r, "calm_ticks"), (long long)geti(r, "calm_needed"),
	    geti(r, "last_stall_ago_ms") >= 0 ? "seen" : "never");
	json_decref(r);
	return EX_OK;
}

static int
ctl_watch(int argc, char **argv)
{
	uint32_t type;
	json_t *r;

	if (argc > 2)
		usage();
	r = request(MCCTL_WATCH, argc == 2 ?
	    json_pack("{s:s}", "guest", argv[1]) : json_object());
	set_timeout(sock_fd, 0);	/* events come once per tick */
	for (;;) {
		if (json_out) {
			char *s = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);

			if (s != NULL)
				printf("%s\n", s);
			free(s);
		} else {
			if (isatty(STDOUT_FILENO))
				printf("\033[H\033[2J");
			print_status(r);
			printf("\n");
		}
		fflush(stdout);
		json_decref(r);
		if ((r = recv_msg(&type)) == NULL) {
			fprintf(stderr, "memcoopctl: memcoopd went away\n");
			return EX_NODAEMON;
		}
		if (type == MCCTL_R_ERROR) {
			int rc = error_exit(r);

			json_decref(r);
			return rc;
		}
	}
}

static int
ctl_ksm(int argc, char **argv)
{
	json_t *r;

	if (argc != 2)
		usage();
	if (strcmp(argv[1], "status") == 0) {
		r = request(MCCTL_KSM_STATUS, json_object());
	} else if (strcmp(argv[1], "on") == 0 || strcmp(argv[1], "off") == 0 ||
	    strcmp(argv[1], "auto") == 0) {
		r = request(MCCTL_KSM_SET, json_pack("{s:s}", "mode", argv[1]));
	} else {
		fprintf(stderr, "memcoopctl: ksm: expected status, on, off or "
		    "auto\n");
		return EX_USAGE;
	}
	if (json_out)
		print_json(r);
	else
		print_ksm_line(r);
	json_decref(r);
	return EX_OK;
}

static int
ctl_stop(int argc, char **argv)
{
	int restore = 0;
	json_t *r;

	if (argc == 2 && strcmp(argv[1], "--restore") == 0)
		restore = 1;
	else if (argc != 1)
		usage();
	r = request(MCCTL_STOP, json_pack("{s:b}", "restore", restore));
	if (json_out)
		print_json(r);
	else
		printf("memcoopd is stopping%s\n", restore ? ", giving the "
		    "guests their memory back first (paced)" :
		    "; the guests stay where they are");
	json_decref(r);
	return EX_OK;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "json",	no_argument,		NULL, 'j' },
		{ "socket",	required_argument,	NULL, 's' },
		{ "timeout",	required_argument,	NULL, 't' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const struct cmd *c;
	int ch, i, n;
	char *end;
	long t;

	/* --json may also come after the command */
	for (i = 1, n = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0 || strcmp(argv[i], "-j") == 0)
			json_out = 1;
		else
			argv[n++] = argv[i];
	}
	argc = n;
	argv[argc] = NULL;
	while ((ch = getopt_long(argc, argv, "+js:t:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			json_out = 1;
			break;
		case 's':
			sock_path = optarg;
			break;
		case 't':
			errno = 0;
			t = strtol(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || end == optarg ||
			    t < 0 || t > 86400) {
				fprintf(stderr, "memcoopctl: -t: expected "
				    "0..86400 seconds\n");
				usage();
			}
			timeout_s = (int)t;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	signal(SIGPIPE, SIG_IGN);
	for (c = cmds; c->name != NULL; c++)
		if (strcmp(c->name, argv[0]) == 0)
			return c->fn(argc, argv);
	fprintf(stderr, "memcoopctl: unknown command \"%s\"\n", argv[0]);
	usage();
}

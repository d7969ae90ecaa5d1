/*
 * The floor of `switchboard-bench floor`, with io_uring: one small send to each of N
 * loopback TCP sockets per round, a whole round submitted in one io_uring_enter.
 * It shows what batching the syscalls saves when the TCP work per socket remains.
 * (C, because the workspace forbids unsafe Rust, and io_uring's submission is unsafe.)
 *
 *   apt-get install -y liburing-dev
 *   gcc -O2 -o target/floor-uring bench/floor/uring.c -luring
 *   target/floor-uring 5000 100 120      # sockets, rounds, bytes per send
 *
 * Loopback only; bounded by its arguments; stops by itself.
 */
#define _GNU_SOURCE
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static double cpu_secs(const struct rusage *r) {
  return r->ru_utime.tv_sec + r->ru_utime.tv_usec / 1e6 + r->ru_stime.tv_sec + r->ru_stime.tv_usec / 1e6;
}

/* The reader: connect n sockets, read until every byte arrived. */
static void reader(const struct sockaddr_in *addr, int n, long want) {
  int ep = epoll_create1(0);
  for (int i = 0; i < n; i++) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    connect(s, (const struct sockaddr *)addr, sizeof *addr);
    struct epoll_event e = {.events = EPOLLIN, .data.fd = s};
    epoll_ctl(ep, EPOLL_CTL_ADD, s, &e);
  }
  struct epoll_event ev[512];
  char buf[4096];
  long total = 0;
  while (total < want) {
    int k = epoll_wait(ep, ev, 512, 5000);
    if (k <= 0) break;
    for (int i = 0; i < k; i++) {
      ssize_t r = read(ev[i].data.fd, buf, sizeof buf);
      if (r > 0) total += r;
    }
  }
  fprintf(stderr, "reader: %ld of %ld bytes\n", total, want);
  _exit(total == want ? 0 : 1);
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 5000;
  int rounds = argc > 2 ? atoi(argv[2]) : 100;
  int bytes = argc > 3 ? atoi(argv[3]) : 120;
  int one = 1;
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof addr;
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  if (bind(listener, (struct sockaddr *)&addr, sizeof addr) || listen(listener, 65535) ||
      getsockname(listener, (struct sockaddr *)&addr, &len)) {
    perror("listen");
    return 1;
  }
  pid_t child = fork();
  if (child == 0) reader(&addr, n, (long)n * rounds * bytes);
  int *fds = malloc(n * sizeof *fds);
  for (int i = 0; i < n; i++) {
    fds[i] = accept(listener, NULL, NULL);
    setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  struct io_uring ring;
  if (io_uring_queue_init(4096, &ring, 0) < 0) {
    perror("io_uring_queue_init");
    return 1;
  }
  char *payload = malloc(bytes);
  memset(payload, 'x', bytes);
  long failed = 0;
  struct rusage before, after;
  getrusage(RUSAGE_SELF, &before);
  for (int r = 0; r < rounds; r++) {
    for (int i = 0; i < n;) {
      int batch = 0;
      struct io_uring_sqe *sqe;
      while (i < n && (sqe = io_uring_get_sqe(&ring)) != NULL) {
        io_uring_prep_send(sqe, fds[i++], payload, bytes, 0);
        batch++;
      }
      io_uring_submit_and_wait(&ring, batch);
      struct io_uring_cqe *cqe;
      unsigned head, seen = 0;
      io_uring_for_each_cqe(&ring, head, cqe) {
        if (cqe->res != bytes) failed++;
        seen++;
      }
      io_uring_cq_advance(&ring, seen);
    }
    usleep(10000);
  }
  getrusage(RUSAGE_SELF, &after);
  long sends = (long)n * rounds;
  double cpu = cpu_secs(&after) - cpu_secs(&before);
  printf("io_uring: %ld sends of %d B over %d sockets, %ld failed: writer CPU %.3f s = %.2f CPU-us per send\n",
         sends, bytes, n, failed, cpu, cpu / sends * 1e6);
  int status;
  waitpid(child, &status, 0);
  return failed == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

/*
 * klab's pod sandbox ("pause") program: holds a pod's namespaces open, reaps orphaned
 * children, and exits cleanly on SIGINT/SIGTERM. Built statically so the image needs
 * nothing else.
 */
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

static void stop(int sig) {
  (void)sig;
  _exit(0);
}

int main(void) {
  struct sigaction on_child = {0};
  on_child.sa_handler = reap;
  on_child.sa_flags = SA_NOCLDSTOP;
  sigaction(SIGCHLD, &on_child, NULL);
  signal(SIGINT, stop);
  signal(SIGTERM, stop);
  for (;;) pause();
}

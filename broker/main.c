/* renkei-broker: command line and signals; the settings are in rk_config,
 * the work is in rk_broker. */
#include "rk_broker.h"
#include "rk_config.h"
#include "rk_diag.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

static volatile sig_atomic_t stop_requested, reload_requested;

static void on_hup(int sig)
{
    (void)sig;
    reload_requested = 1;
}

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
        "Usage: renkei-broker [OPTION]...\n"
        "Relay and store renkei events: municipalities publish KPI updates and\n"
        "disaster-support events; every event is stored in an LMDB log before it is\n"
        "acknowledged, relayed live to subscribers, and can be replayed.\n"
        "\n"
        "Runs with no options: loopback endpoints, data in ./%s.\n"
        "\n", RK_DEFAULT_DATA_DIR);
    rk_config_print_options(out);
    fprintf(out,
        "\n"
        "Settings come from the built-in defaults, then the --config file, then the\n"
        "other options: an option overrides the file wherever --config appears.\n"
        "\n"
        "Endpoints are ZeroMQ addresses: tcp://HOST:PORT or ipc:///path.\n"
        "Logs go to stderr as key=value lines; \"msg=ready\" means it accepts publishes.\n"
        "SIGINT or SIGTERM: commit and acknowledge what has arrived, then exit 0.\n"
        "--check-config checks what the settings name, as a start would: the\n"
        "key file holds a secret key and the ACL loads, files are readable and the\n"
        "data directory writable by the user running it, an endpoint off loopback has\n"
        "CURVE. Each problem is printed as FILE:LINE: key: reason.\n"
        "Exit status: 0 after a clean stop, 1 when it cannot start or the log fails,\n"
        "2 for bad settings.\n");
}

/* --check-config: one line on stdout naming where the settings came from. */
static void print_check(const struct rk_config *cfg, const struct rk_config_cli *cli)
{
    printf("%s: ok: ", cli->config_path ? cli->config_path : "renkei-broker");
    rk_config_print_summary(cfg, stdout);
    putchar('\n');
}

/* Each subscriber and publisher holds a descriptor; the usual soft limit
 * of 1024 would cap a prefecture's worth of subscribers. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    struct rk_config cfg;
    struct rk_config_cli cli;
    struct sigaction sa;
    int rc = 2;

    rk_config_init(&cfg);
    if (rk_config_parse_args(&cfg, argc, argv, &cli, stderr) != 0)
        goto out;
    rc = 0;
    if (cli.help) {
        usage(stdout);
        goto out;
    }
    if (cli.version) {
        printf("renkei-broker %s\n", RK_VERSION);
        goto out;
    }
    /* --check-config: what a start would trip over (rk_security refuses the
     * same at start, in the log), found before it starts. */
    if (cli.check_only) {
        if (rk_config_check(&cfg, cli.config_path, stderr) != 0)
            rc = 2;
        else
            print_check(&cfg, &cli);
        goto out;
    }
    rk_diag_threshold = cfg.log_level;
    if (cli.config_path)
        RK_DIAG(RK_DIAG_INFO, "config_loaded", "file=\"%s\"", cli.config_path);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    raise_fd_limit();
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    rc = rk_broker_run(&cfg.broker, &stop_requested, &reload_requested) == 0 ? 0 : 1;
out:
    rk_config_release(&cfg);
    return rc;
}

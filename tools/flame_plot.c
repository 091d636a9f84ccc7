/* flame-plot: the curves of one or more runs, drawn by gnuplot.
 *   flame-plot DIR [DIR ...] -o FILE.png|FILE.svg [--x step|tokens]
 * Each DIR's metrics.jsonl becomes a data file; a gnuplot script draws three
 * panels (loss with validation loss, learning rate, gradient norm), a line
 * per run, with axes, ticks and a legend. */
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errors.h"
#include "metrics_row.h"

static const char usage[] =
    "usage: flame-plot DIR [DIR ...] -o FILE.png|FILE.svg [--x step|tokens]\n"
    "\n"
    "Draws the runs whose output folders are given (each DIR's metrics.jsonl):\n"
    "loss and validation loss, learning rate and gradient norm against the step\n"
    "or the tokens trained on, one line per run, the legend naming each by its\n"
    "folder. Drawn by gnuplot (Debian: gnuplot-nox; $FLAME_GNUPLOT names another\n"
    "program), as PNG or SVG by FILE's extension. Exit status: 0 done, 1 gnuplot\n"
    "failed, 2 bad command line or a missing file or program, 3 a metrics.jsonl\n"
    "that is not one.\n";

enum { MAX_RUNS = 32 };

static void put_value(FILE *f, double v)
{
    if (isnan(v))
        fputs(" ?", f);
    else
        fprintf(f, " %.9g", v);
}

/* DIR/metrics.jsonl as columns x loss lr grad_norm val_loss into out;
 * *has_val: a row holds val_loss. Returns an exit status. */
static int convert_run(const char *dir, const char *x_key, FILE *out, int *has_val)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *in = fopen(path, "r");
    if (!in) {
        fprintf(stderr, "flame-plot: %s: %s\n", path, strerror(errno));
        return FLAME_EXIT_CONFIG;
    }
    char line[1 << 16], err[256];
    int n = 0, rows = 0;
    while (fgets(line, sizeof line, in)) {
        n++;
        metrics_row r;
        int bad = metrics_row_parse(line, strlen(line), &r, err, sizeof err);
        double x = bad ? NAN : strcmp(x_key, "tokens") ? r.step : r.tokens;
        if (isnan(x)) {
            fprintf(stderr, "flame-plot: %s:%d: %s\n", path, n,
                    bad ? err : "no number under \"tokens\"");
            fclose(in);
            return FLAME_EXIT_DATA;
        }
        fprintf(out, "%.9g", x);
        put_value(out, r.loss);
        put_value(out, r.lr);
        put_value(out, r.grad_norm);
        put_value(out, r.val_loss);
        fputc('\n', out);
        *has_val |= !isnan(r.val_loss);
        rows++;
    }
    fclose(in);
    if (rows == 0) {
        fprintf(stderr, "flame-plot: %s: no rows\n", path);
        return FLAME_EXIT_DATA;
    }
    return FLAME_EXIT_OK;
}

/* a run's legend: its folder's name, with gnuplot's special characters escaped */
static void legend(char *out, size_t n, const char *dir)
{
    char copy[4200];
    snprintf(copy, sizeof copy, "%s", dir);
    const char *name = basename(copy);
    size_t k = 0;
    for (; *name && k + 3 < n; name++) {
        if (strchr("_^@&{}\\\"", *name))
            out[k++] = '\\';
        out[k++] = *name;
    }
    out[k] = '\0';
}

/* one panel: column col of every run (and val_loss as dashes on the loss panel) */
static void panel(FILE *s, const char *tmp, int runs, char legends[][256], const char *ylabel,
                  int col, const int *val, int log_y)
{
    fprintf(s, "set ylabel \"%s\"\n%s", ylabel, log_y ? "set logscale y\n" : "unset logscale y\n");
    fprintf(s, "plot ");
    for (int i = 0; i < runs; i++)
        fprintf(s, "%s'%s/run%d.dat' using 1:%d with lines lw 2 lc %d title \"%s\"",
                i ? ", " : "", tmp, i, col, i + 1, legends[i]);
    for (int i = 0; val && i < runs; i++)
        if (val[i])
            fprintf(s, ", '%s/run%d.dat' using 1:5 with linespoints dt 2 pt 7 ps 0.6 lc %d "
                       "title \"%s (validation)\"", tmp, i, i + 1, legends[i]);
    fputc('\n', s);
}

/* a gnuplot double-quoted string: backslashes and quotes escaped */
static void quoted(FILE *s, const char *text)
{
    fputc('"', s);
    for (; *text; text++) {
        if (*text == '"' || *text == '\\')
            fputc('\\', s);
        fputc(*text, s);
    }
    fputc('"', s);
}

static int write_script(const char *path, const char *tmp, const char *output, int svg,
                        const char *x_key, int runs, char legends[][256], const int *has_val)
{
    FILE *s = fopen(path, "w");
    if (!s)
        return -1;
    fprintf(s, "set terminal %s size 1200,900 %s\n", svg ? "svg" : "pngcairo",
            svg ? "dynamic background rgb 'white'" : "background rgb 'white'");
    fputs("set output ", s);
    quoted(s, output);
    fprintf(s, "\nset datafile missing \"?\"\nset grid\nset key outside right\n"
               "set multiplot layout 3,1\nset xlabel \"%s\"\n", x_key);
    panel(s, tmp, runs, legends, "loss", 2, has_val, 0);
    panel(s, tmp, runs, legends, "learning rate", 3, NULL, 0);
    panel(s, tmp, runs, legends, "gradient norm", 4, NULL, 1);
    fputs("unset multiplot\n", s);
    return fclose(s);
}

/* gnuplot SCRIPT; returns an exit status */
static int run_gnuplot(const char *script)
{
    const char *program = getenv("FLAME_GNUPLOT") ? getenv("FLAME_GNUPLOT") : "gnuplot";
    pid_t pid = fork();
    if (pid == 0) {
        execlp(program, program, script, (char *)NULL);
        _exit(127);
    }
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) < 0) {
        fprintf(stderr, "flame-plot: cannot run %s: %s\n", program, strerror(errno));
        return FLAME_EXIT_RUNTIME;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
        fprintf(stderr, "flame-plot: %s not found: install gnuplot (Debian: apt-get install "
                "gnuplot-nox) or name it in $FLAME_GNUPLOT\n", program);
        return FLAME_EXIT_CONFIG;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "flame-plot: %s failed on %s\n", program, script);
        return FLAME_EXIT_RUNTIME;
    }
    return FLAME_EXIT_OK;
}

typedef struct plot_args {
    const char *dirs[MAX_RUNS];
    int runs;
    const char *output, *x_key;
    int svg;
} plot_args;

static int bad_usage(const char *what, const char *arg)
{
    fprintf(stderr, "flame-plot: %s%s (flame-plot -h for help)\n", what, arg);
    return FLAME_EXIT_CONFIG;
}

/* Returns -1 to go on, or an exit status. */
static int parse(int argc, char **argv, plot_args *a)
{
    a->x_key = "step";
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            fputs(usage, stdout);
            return FLAME_EXIT_OK;
        }
        if ((!strcmp(arg, "-o") || !strcmp(arg, "--x")) && i + 1 == argc)
            return bad_usage("no value for ", arg);
        if (!strcmp(arg, "-o"))
            a->output = argv[++i];
        else if (!strcmp(arg, "--x"))
            a->x_key = argv[++i];
        else if (arg[0] == '-')
            return bad_usage("unknown option ", arg);
        else if (a->runs == MAX_RUNS)
            return bad_usage("too many runs: at most 32", "");
        else
            a->dirs[a->runs++] = arg;
    }
    const char *dot = a->output ? strrchr(a->output, '.') : NULL;
    if (!a->runs)
        return bad_usage("no run folder given", "");
    if (!dot || (strcmp(dot, ".png") && strcmp(dot, ".svg")))
        return bad_usage("-o FILE.png or FILE.svg is required; got ", a->output ? a->output : "none");
    if (strcmp(a->x_key, "step") && strcmp(a->x_key, "tokens"))
        return bad_usage("--x step or tokens; got ", a->x_key);
    a->svg = strcmp(dot, ".svg") == 0;
    return -1;
}

/* every run's data file into tmp; returns an exit status */
static int write_data(const plot_args *a, const char *tmp, char legends[][256], int *has_val)
{
    for (int i = 0; i < a->runs; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/run%d.dat", tmp, i);
        FILE *f = fopen(path, "w");
        if (!f) {
            fprintf(stderr, "flame-plot: %s: %s\n", path, strerror(errno));
            return FLAME_EXIT_RUNTIME;
        }
        int rc = convert_run(a->dirs[i], a->x_key, f, &has_val[i]);
        fclose(f);
        if (rc != FLAME_EXIT_OK)
            return rc;
        legend(legends[i], sizeof legends[i], a->dirs[i]);
    }
    return FLAME_EXIT_OK;
}

int main(int argc, char **argv)
{
    plot_args a = {0};
    int rc = parse(argc, argv, &a);
    if (rc >= 0)
        return rc;
    char tmp[] = "/tmp/flame-plot.XXXXXX", script[64];
    if (!mkdtemp(tmp)) {
        fprintf(stderr, "flame-plot: cannot make a temporary folder: %s\n", strerror(errno));
        return FLAME_EXIT_RUNTIME;
    }
    static char legends[MAX_RUNS][256];
    int has_val[MAX_RUNS] = {0}; /* each run: a row holds val_loss */
    rc = write_data(&a, tmp, legends, has_val);
    snprintf(script, sizeof script, "%s/plot.gp", tmp);
    if (rc == FLAME_EXIT_OK &&
        write_script(script, tmp, a.output, a.svg, a.x_key, a.runs, legends, has_val)) {
        fprintf(stderr, "flame-plot: %s: %s\n", script, strerror(errno));
        rc = FLAME_EXIT_RUNTIME;
    }
    if (rc == FLAME_EXIT_OK && (rc = run_gnuplot(script)) == FLAME_EXIT_OK)
        printf("flame-plot: %d run%s drawn into %s\n", a.runs, a.runs == 1 ? "" : "s", a.output);
    for (int i = 0; i < a.runs; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/run%d.dat", tmp, i);
        unlink(path);
    }
    unlink(script);
    rmdir(tmp);
    return rc;
}

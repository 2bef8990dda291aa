/*
 * rayhpc-perf --report DIR: every figure's job, its output kept in
 * DIR/figures.txt, then DIR/report.md (figure, ours, reference, ratio,
 * target, met?) and the plots: DIR/<plot>.svg drawn here, and
 * DIR/<plot>.png with gnuplot where it is installed (one line says so where
 * it is not). The jobs print curves for the plots as comment lines:
 *   # series PLOT CURVE X Y
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "perf.h"
#include "perf_progress.h"

/* ---- targets (../shared/ANCHORS.md) ------------------------------------- */

enum { NONE = 0, AT_LEAST, AT_MOST };

typedef struct perf_target {
    const char *figure;
    int         ratio_cmp;     /* on ours / reference */
    double      ratio;
    int         value_cmp;     /* on ours */
    double      value;
    const char *text;
} perf_target_t;

static const perf_target_t perf_targets[] = {
    { "local_tasks", AT_LEAST, 10, AT_LEAST, 1e6,
      ">= 1 M tasks/s and >= 10x StarPU" },
    { "put_bw", AT_LEAST, 0.8, NONE, 0, ">= 0.8 of memcpy" },
    { "get_lat", NONE, 0, AT_MOST, 1, "<= 1 us" },
    { "small_ops", NONE, 0, AT_LEAST, 1e6, ">= 1 M ops/s" },
    { "remote_task_rtt", AT_MOST, 4, NONE, 0, "<= 4x UCX round trip" },
    { "remote_tasks", AT_LEAST, 0.25, NONE, 0, ">= 0.25 of UCX 64 B AM rate" },
    { "pull_bw_4MiB", AT_LEAST, 0.9, NONE, 0, ">= 0.9 of ucp_get" },
    { "pull_bw_256MiB", AT_LEAST, 0.9, NONE, 0, ">= 0.9 of ucp_get" },
    { "balance_dev_pct", NONE, 0, AT_MOST, 10, "every node within 10%" },
    { "actor_rtt", AT_MOST, 5, NONE, 0, "<= 5x UCX round trip" },
    { "actor_calls", NONE, 0, AT_LEAST, 5e5, ">= 500 K calls/s" },
    { "actor_calls_remote", NONE, 0, AT_LEAST, 5e5, ">= 500 K calls/s" },
    { "actor_calls_node", NONE, 0, AT_LEAST, 5e5, ">= 500 K calls/s" },
    { NULL, NONE, 0, NONE, 0, NULL }
};

/* Figures of --quick: one or two cheap ones of each group. */
static const char *const perf_quick[] = {
    "am_lat", "get_lat", "small_ops", "remote_task_rtt", "pull_bw_4MiB",
    "balance_dev_pct", "actor_rtt", NULL
};

/* ---- results ------------------------------------------------------------ */

typedef struct perf_result {
    char   name[64];
    int    has_ours, has_ref, has_ratio;
    double ours, ref, ratio;
    char   unit[64], refname[64], extra[64];
} perf_result_t;

#define PERF_MAX_RESULTS 128
#define PERF_MAX_POINTS  512

typedef struct perf_point {
    char   plot[32], curve[32];
    double x, y;
} perf_point_t;

static perf_result_t perf_res[PERF_MAX_RESULTS];
static int perf_nres;
static perf_point_t perf_pts[PERF_MAX_POINTS];
static int perf_npts;

static perf_result_t *perf_result(const char *name)
{
    for (int i = 0; i < perf_nres; i++) {
        if (strcmp(perf_res[i].name, name) == 0) {
            return &perf_res[i];
        }
    }
    if (perf_nres == PERF_MAX_RESULTS) {
        return NULL;
    }
    snprintf(perf_res[perf_nres].name, sizeof(perf_res[0].name), "%s", name);
    return &perf_res[perf_nres++];
}

/* One line of a job's output. */
static void perf_parse_line(char *line)
{
    char name[64], unit[64], rest[64] = "";
    double v;
    perf_result_t *r;
    char *slash, *paren;

    line[strcspn(line, "\n")] = '\0';
    if (line[0] == '#') {
        perf_point_t *p = &perf_pts[perf_npts];

        if (perf_npts < PERF_MAX_POINTS &&
            sscanf(line, "# series %31s %31s %lf %lf", p->plot, p->curve,
                   &p->x, &p->y) == 4) {
            perf_npts++;
        }
        return;
    }
    if (sscanf(line, "%63s %lf %63s %63[^\n]", name, &v, unit, rest) < 3) {
        return;
    }
    slash = strchr(name, '/');
    if (slash != NULL && strcmp(unit, "x") == 0) {
        *slash = '\0';
        if ((r = perf_result(name)) != NULL) {
            r->has_ratio = 1;
            r->ratio = v;
            if (!r->refname[0]) {
                snprintf(r->refname, sizeof(r->refname), "%s", slash + 1);
            }
        }
        return;
    }
    if ((r = perf_result(name)) == NULL) {
        return;
    }
    paren = strchr(unit, '(');
    if (paren != NULL) {
        *paren = '\0';
        paren[strcspn(paren + 1, ")") + 1] = '\0';
        r->has_ref = 1;
        r->ref = v;
        snprintf(r->refname, sizeof(r->refname), "%s", paren + 1);
    } else {
        r->has_ours = 1;
        r->ours = v;
        snprintf(r->extra, sizeof(r->extra), "%s", rest);
    }
    snprintf(r->unit, sizeof(r->unit), "%s", unit);
}

static int perf_read_results(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[512];

    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        perf_parse_line(line);
    }
    fclose(f);
    return 0;
}

/* ---- report.md ---------------------------------------------------------- */

static const perf_target_t *perf_target_of(const char *figure)
{
    for (const perf_target_t *t = perf_targets; t->figure; t++) {
        if (strcmp(t->figure, figure) == 0) {
            return t;
        }
    }
    return NULL;
}

static int perf_cmp(int cmp, double v, double limit)
{
    return cmp == AT_LEAST ? v >= limit : v <= limit;
}

/* "yes", "no", or "" when the figure has no target or misses a number. */
static const char *perf_met(const perf_target_t *t, const perf_result_t *r)
{
    int ok = 1;

    if (t == NULL || r == NULL || !r->has_ours) {
        return "";
    }
    if (t->ratio_cmp != NONE) {
        if (!r->has_ratio) {
            return "";
        }
        ok &= perf_cmp(t->ratio_cmp, r->ratio, t->ratio);
    }
    if (t->value_cmp != NONE) {
        ok &= perf_cmp(t->value_cmp, r->ours, t->value);
    }
    return ok ? "yes" : "no";
}

static int perf_is_quick(const char *figure)
{
    for (int i = 0; perf_quick[i]; i++) {
        if (strcmp(perf_quick[i], figure) == 0) {
            return 1;
        }
    }
    return 0;
}

static void perf_write_md(FILE *f, int quick, const char *const *plots,
                          int nplots, const char *png_note)
{
    fprintf(f, "# rayhpc-perf report\n\n");
    fprintf(f, "Each figure ran beside its reference in the same job; the "
            "ratio is ours / reference.%s\n\n", quick ?
            " Short run (`--quick`): only some figures were measured." : "");
    fprintf(f, "| figure | ours | reference | ratio | target | met |\n"
            "|---|---|---|---|---|---|\n");
    for (const perf_group_t *const *gp = perf_groups; *gp; gp++) {
        for (int i = 0; (*gp)->figures[i]; i++) {
            const char *name = (*gp)->figures[i];
            const perf_result_t *r = NULL;
            const perf_target_t *t = perf_target_of(name);

            for (int k = 0; k < perf_nres; k++) {
                if (strcmp(perf_res[k].name, name) == 0) {
                    r = &perf_res[k];
                }
            }
            fprintf(f, "| `%s` | ", name);
            if (r == NULL || !r->has_ours) {
                fprintf(f, "%s | | | %s | |\n", quick && !perf_is_quick(name)
                        ? "not measured (--quick)" : "no result",
                        t ? t->text : "");
                continue;
            }
            fprintf(f, "%.4g %s%s%s | ", r->ours, r->unit,
                    r->extra[0] ? ", " : "", r->extra);
            if (r->has_ref) {
                fprintf(f, "%.4g %s (%s)", r->ref, r->unit, r->refname);
            }
            fprintf(f, " | ");
            if (r->has_ratio) {
                fprintf(f, "%.3g", r->ratio);
            }
            fprintf(f, " | %s | %s |\n", t ? t->text : "", perf_met(t, r));
        }
    }
    if (nplots > 0) {
        fprintf(f, "\n## Plots\n\n");
        for (int i = 0; i < nplots; i++) {
            fprintf(f, "![%s](%s.svg)\n\n", plots[i], plots[i]);
        }
    }
    if (png_note != NULL) {
        fprintf(f, "%s\n", png_note);
    }
}

/* ---- plots -------------------------------------------------------------- */

typedef struct perf_plot {
    const char *name, *title, *xlabel, *ylabel;
    int         logx, logy, bars;
} perf_plot_t;

static const perf_plot_t perf_plots[] = {
    { "tasks", "Task throughput vs number of tasks", "tasks",
      "tasks/s", 1, 1, 0 },
    { "pull", "Pull bandwidth vs object size", "bytes", "GiB/s", 1, 0, 0 },
    { "rtt", "Round trip vs payload", "payload bytes", "us", 1, 1, 0 },
    { "balance", "Tasks per node (DEFAULT strategy)", "node", "tasks",
      0, 0, 1 },
    { NULL, NULL, NULL, NULL, 0, 0, 0 }
};

static const char *const perf_colors[] = {
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"
};

static double perf_axis(double v, int log)
{
    return log ? log10(v > 0 ? v : 1e-12) : v;
}

/* The curves of one plot, in the order they first appear. */
static int perf_curves(const char *plot, const char *curves[6])
{
    int n = 0;

    for (int i = 0; i < perf_npts; i++) {
        int k;

        if (strcmp(perf_pts[i].plot, plot) != 0) {
            continue;
        }
        for (k = 0; k < n && strcmp(curves[k], perf_pts[i].curve) != 0; k++) {
        }
        if (k == n && n < 6) {
            curves[n++] = perf_pts[i].curve;
        }
    }
    return n;
}

static int perf_write_svg(const char *dir, const perf_plot_t *pl)
{
    const double W = 640, H = 400, L = 80, R = 150, T = 40, B = 50;
    const char *curves[6];
    int nc = perf_curves(pl->name, curves);
    double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
    char path[4096];
    FILE *f;

    if (nc == 0) {
        return 0;
    }
    for (int i = 0; i < perf_npts; i++) {
        const perf_point_t *p = &perf_pts[i];

        if (strcmp(p->plot, pl->name) == 0) {
            double x = perf_axis(p->x, pl->logx), y = perf_axis(p->y,
                                                                pl->logy);

            x0 = fmin(x0, x);
            x1 = fmax(x1, x);
            y0 = fmin(y0, y);
            y1 = fmax(y1, y);
        }
    }
    if (pl->bars || !pl->logy) {
        y0 = fmin(y0, 0);
    }
    if (pl->bars) {
        x0 -= 0.5;
        x1 += 0.5;
    }
    if (x1 - x0 < 1e-9) {
        x0 -= 1;
        x1 += 1;
    }
    if (y1 - y0 < 1e-9) {
        y1 = y0 + 1;
    }
    y1 += (y1 - y0) * 0.05;
    snprintf(path, sizeof(path), "%s/%s.svg", dir, pl->name);
    f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "rayhpc-perf: cannot write %s: %s\n", path,
                strerror(errno));
        return -1;
    }
#define PX(v) (L + ((v) - x0) / (x1 - x0) * (W - L - R))
#define PY(v) (H - B - ((v) - y0) / (y1 - y0) * (H - T - B))
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
            "height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%.0f\" y=\"22\" font-size=\"15\">%s</text>\n",
            W, H, L, pl->title);
    fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" "
            "stroke=\"black\"/>\n<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" "
            "y2=\"%.0f\" stroke=\"black\"/>\n", L, H - B, W - R, H - B, L, T,
            L, H - B);
    for (int i = 0; i <= 4; i++) {
        double yv = y0 + (y1 - y0) * i / 4, xv = x0 + (x1 - x0) * i / 4;

        fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.3g"
                "</text>\n", L - 6, PY(yv) + 4, pl->logy ? pow(10, yv) : yv);
        if (!pl->bars) {
            fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">"
                    "%.3g</text>\n", PX(xv), H - B + 16,
                    pl->logx ? pow(10, xv) : xv);
        }
    }
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">%s%s"
            "</text>\n<text x=\"14\" y=\"%.0f\" transform=\"rotate(-90 14 "
            "%.0f)\" text-anchor=\"middle\">%s%s</text>\n",
            (L + W - R) / 2, H - 12, pl->xlabel, pl->logx ? " (log)" : "",
            (T + H - B) / 2, (T + H - B) / 2, pl->ylabel,
            pl->logy ? " (log)" : "");
    for (int c = 0; c < nc; c++) {
        const char *color = perf_colors[c];
        int first = 1;

        if (!pl->bars) {
            fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" "
                    "stroke-width=\"2\" points=\"", color);
        }
        for (int i = 0; i < perf_npts; i++) {
            const perf_point_t *p = &perf_pts[i];
            double x = perf_axis(p->x, pl->logx), y = perf_axis(p->y,
                                                                pl->logy);

            if (strcmp(p->plot, pl->name) != 0 ||
                strcmp(p->curve, curves[c]) != 0) {
                continue;
            }
            if (pl->bars) {
                double bw = (W - L - R) / (x1 - x0) * 0.8 / nc;
                double bx = PX(x) - bw * nc / 2 + bw * c;

                fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                        "height=\"%.1f\" fill=\"%s\"/>\n<text x=\"%.1f\" "
                        "y=\"%.0f\" text-anchor=\"middle\">%g</text>\n", bx,
                        PY(y), bw, PY(y0) - PY(y), color, bx + bw / 2,
                        H - B + 16, p->x);
            } else {
                fprintf(f, "%s%.1f,%.1f", first ? "" : " ", PX(x), PY(y));
            }
            first = 0;
        }
        if (!pl->bars) {
            fprintf(f, "\"/>\n");
        }
        fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"12\" height=\"12\" "
                "fill=\"%s\"/><text x=\"%.0f\" y=\"%.0f\">%s</text>\n",
                W - R + 14, T + 10 + c * 20, color, W - R + 32,
                T + 21 + c * 20, curves[c]);
    }
#undef PX
#undef PY
    fprintf(f, "</svg>\n");
    return fclose(f) == 0 ? 1 : -1;
}

/* DIR/<plot>.py and a PNG by python3-matplotlib. */
static int perf_write_png_mpl(const char *dir, const perf_plot_t *pl)
{
    const char *curves[6];
    int nc = perf_curves(pl->name, curves);
    char path[4096], cmd[8400];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s.py", dir, pl->name);
    f = fopen(path, "w");
    if (f == NULL) {
        return -1;
    }
    fprintf(f, "import matplotlib\nmatplotlib.use('Agg')\n"
            "import matplotlib.pyplot as plt\n"
            "fig, ax = plt.subplots(figsize=(6.4, 4))\n");
    for (int c = 0; c < nc; c++) {
        fprintf(f, "x, y = [], []\n");
        for (int i = 0; i < perf_npts; i++) {
            const perf_point_t *p = &perf_pts[i];

            if (strcmp(p->plot, pl->name) == 0 &&
                strcmp(p->curve, curves[c]) == 0) {
                fprintf(f, "x.append(%.9g); y.append(%.9g)\n", p->x, p->y);
            }
        }
        if (pl->bars) {
            fprintf(f, "ax.bar([v + %g for v in x], y, width=%g, "
                    "label='%s')\n", -0.4 + 0.8 * (c + 0.5) / nc, 0.8 / nc,
                    curves[c]);
        } else {
            fprintf(f, "ax.plot(x, y, marker='o', label='%s')\n",
                    curves[c]);
        }
    }
    fprintf(f, "%s%sax.set_title('%s')\nax.set_xlabel('%s')\n"
            "ax.set_ylabel('%s')\nax.legend()\n"
            "fig.savefig('%s/%s.png', dpi=100, bbox_inches='tight')\n",
            pl->logx ? "ax.set_xscale('log')\n" : "",
            pl->logy ? "ax.set_yscale('log')\n" : "", pl->title,
            pl->xlabel, pl->ylabel, dir, pl->name);
    if (fclose(f) != 0) {
        return -1;
    }
    snprintf(cmd, sizeof(cmd), "python3 '%s'", path);
    return system(cmd) == 0 ? 1 : -1;
}

/* DIR/<plot>.gp (the data inline) and a PNG by gnuplot. */
static int perf_write_png(const char *dir, const perf_plot_t *pl)
{
    const char *curves[6];
    int nc = perf_curves(pl->name, curves);
    char path[4096], cmd[8400];
    FILE *f;

    if (nc == 0) {
        return 0;
    }
    snprintf(path, sizeof(path), "%s/%s.gp", dir, pl->name);
    f = fopen(path, "w");
    if (f == NULL) {
        return -1;
    }
    fprintf(f, "set terminal png size 640,400\nset output '%s/%s.png'\n"
            "set title '%s'\nset xlabel '%s'\nset ylabel '%s'\n%s%s%s"
            "set key outside right\nplot ", dir, pl->name, pl->title,
            pl->xlabel, pl->ylabel, pl->logx ? "set logscale x\n" : "",
            pl->logy ? "set logscale y\n" : "",
            pl->bars ? "set style fill solid\nset boxwidth 0.4\n" : "");
    for (int c = 0; c < nc; c++) {
        fprintf(f, "%s'-' using 1:2 with %s title '%s'", c ? ", " : "",
                pl->bars ? "boxes" : "linespoints", curves[c]);
    }
    fprintf(f, "\n");
    for (int c = 0; c < nc; c++) {
        for (int i = 0; i < perf_npts; i++) {
            const perf_point_t *p = &perf_pts[i];

            if (strcmp(p->plot, pl->name) == 0 &&
                strcmp(p->curve, curves[c]) == 0) {
                fprintf(f, "%g %g\n", p->x, p->y);
            }
        }
        fprintf(f, "e\n");
    }
    if (fclose(f) != 0) {
        return -1;
    }
    snprintf(cmd, sizeof(cmd), "gnuplot '%s'", path);
    return system(cmd) == 0 ? 1 : -1;
}

/* What draws the PNG plots: 1 gnuplot, 2 python3-matplotlib, 0 none. */
static int perf_png_tool(void)
{
    if (system("command -v gnuplot >/dev/null 2>&1") == 0) {
        return 1;
    }
    if (system("python3 -c 'import matplotlib' >/dev/null 2>&1") == 0) {
        return 2;
    }
    return 0;
}

/* ---- the run ------------------------------------------------------------ */

int perf_report_run(const char *self, const char *dir, int quick)
{
    char raw[4096], md[4096], note[256];
    const char *plots[8];
    const char *png_note = NULL;
    int nplots = 0, failed, png;
    FILE *f;

    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "rayhpc-perf: cannot make %s: %s\n", dir,
                strerror(errno));
        return 1;
    }
    snprintf(raw, sizeof(raw), "%s/figures.txt", dir);
    f = fopen(raw, "w");
    if (f == NULL) {
        fprintf(stderr, "rayhpc-perf: cannot write %s: %s\n", raw,
                strerror(errno));
        return 1;
    }
    fclose(f);
    /* The jobs print their curves too. */
    setenv("RH_PERF_SERIES", quick ? "quick" : "full", 1);
    failed = perf_launch_to(self, quick ? perf_quick : NULL, raw);
    if (perf_read_results(raw) != 0) {
        fprintf(stderr, "rayhpc-perf: cannot read %s\n", raw);
        return 1;
    }
    png = perf_png_tool();
    for (const perf_plot_t *pl = perf_plots; pl->name; pl++) {
        int s = perf_write_svg(dir, pl);

        if (s > 0) {
            plots[nplots++] = pl->name;
            if ((png == 1 && perf_write_png(dir, pl) < 0) ||
                (png == 2 && perf_write_png_mpl(dir, pl) < 0)) {
                fprintf(stderr, "rayhpc-perf: %s failed on %s/%s.%s\n",
                        png == 1 ? "gnuplot" : "python3", dir, pl->name,
                        png == 1 ? "gp" : "py");
            }
        }
        failed |= s < 0;
    }
    if (!png && nplots > 0) {
        snprintf(note, sizeof(note), "PNG plots skipped: neither gnuplot nor "
                 "python3-matplotlib is installed (the SVG plots are drawn "
                 "by rayhpc-perf).");
        png_note = note;
        fprintf(stderr, "rayhpc-perf: %s\n", note);
    }
    snprintf(md, sizeof(md), "%s/report.md", dir);
    f = fopen(md, "w");
    if (f == NULL) {
        fprintf(stderr, "rayhpc-perf: cannot write %s: %s\n", md,
                strerror(errno));
        return 1;
    }
    perf_write_md(f, quick, plots, nplots, png_note);
    if (fclose(f) != 0) {
        return 1;
    }
    perf_progress_done();
    fprintf(stderr, "rayhpc-perf: report in %s (%d plots)\n", md, nplots);
    return failed;
}

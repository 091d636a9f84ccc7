// The TOML reader of toml_reader.h: toml++ parses, this file flattens its
// two levels (table, key) into INI-like text and reports in file order.
#include "toml_reader.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include <toml++/toml.h>

namespace {

struct setting {
    std::string section, key, text;
    int line;
};

// The shortest decimal that reads back as x.
std::string float_text(double x)
{
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        std::snprintf(buf, sizeof buf, "%.*g", prec, x);
        if (std::strtod(buf, nullptr) == x)
            break;
    }
    return buf;
}

// A scalar's INI text; false for a table or an array.
bool scalar_text(const toml::node &n, std::string &out)
{
    if (auto s = n.as_string())
        out = s->get();
    else if (auto i = n.as_integer())
        out = std::to_string(i->get());
    else if (auto f = n.as_floating_point())
        out = float_text(f->get());
    else if (auto b = n.as_boolean())
        out = b->get() ? "true" : "false";
    else if (n.is_date() || n.is_time() || n.is_date_time()) {
        std::ostringstream s;
        n.visit([&s](auto &&v) { s << v; });
        out = s.str();
    } else
        return false;
    return true;
}

// A value's INI text, or an empty `why` filled with the reason it has none.
std::string value_text(const toml::node &n, std::string &why)
{
    std::string out;
    if (scalar_text(n, out))
        return out;
    if (auto a = n.as_array()) {
        for (size_t i = 0; i < a->size(); i++) {
            std::string item;
            if (!scalar_text(*a->get(i), item)) {
                why = "an array holding arrays or tables";
                return "";
            }
            out += (i ? "," : "") + item;
        }
        return out;
    }
    why = "a table inside a table";
    return "";
}

int fail(char *err, size_t err_len, const char *path, int line, const std::string &what)
{
    std::snprintf(err, err_len, "%s:%d: %s", path, line, what.c_str());
    return -1;
}

// Every (section, key) of the document, or -1 with err.
int flatten(const toml::table &doc, const char *path, std::vector<setting> &out, char *err,
            size_t err_len)
{
    for (auto &&[name, node] : doc) {
        int line = static_cast<int>(node.source().begin.line);
        auto table = node.as_table();
        if (!table)
            return fail(err, err_len, path, line,
                        std::string(name.str()) + " is outside any [section]");
        for (auto &&[key, value] : *table) {
            std::string why;
            std::string text = value_text(value, why);
            int at = static_cast<int>(value.source().begin.line);
            if (!why.empty())
                return fail(err, err_len, path, at,
                            "[" + std::string(name.str()) + "] " + std::string(key.str()) +
                                ": " + why + " is no flame setting");
            out.push_back({std::string(name.str()), std::string(key.str()), text, at});
        }
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const setting &a, const setting &b) { return a.line < b.line; });
    return 0;
}

// The whole file, at most max bytes; false with err when it cannot be read.
bool read_text(const char *path, std::string &text, char *err, size_t err_len)
{
    const size_t max = 16u << 20; // a config is small: /dev/zero is none
    std::FILE *f = std::fopen(path, "rb");
    if (!f) {
        std::snprintf(err, err_len, "%s: cannot open: %s", path, std::strerror(errno));
        return false;
    }
    char buf[65536];
    size_t got;
    while ((got = std::fread(buf, 1, sizeof buf, f)) > 0 && text.size() <= max)
        text.append(buf, got);
    bool failed = std::ferror(f);
    std::fclose(f);
    if (failed)
        std::snprintf(err, err_len, "%s: cannot read", path);
    else if (text.size() > max)
        std::snprintf(err, err_len, "%s: larger than %zu bytes (not a config file?)", path, max);
    return !failed && text.size() <= max;
}

} // namespace

extern "C" int toml_read_file(const char *path, toml_visit visit, void *ctx, char *err,
                              size_t err_len)
{
    static_assert(TOML_EXCEPTIONS, "toml++ as Debian builds it reports errors by exceptions");
    std::string text;
    if (!read_text(path, text, err, err_len))
        return -1;
    toml::table doc;
    try {
        doc = toml::parse(text, std::string_view(path));
    } catch (const toml::parse_error &e) {
        std::snprintf(err, err_len, "%s:%d:%d: invalid TOML: %s", path,
                      static_cast<int>(e.source().begin.line),
                      static_cast<int>(e.source().begin.column), std::string(e.description()).c_str());
        return -1;
    }
    std::vector<setting> settings;
    if (flatten(doc, path, settings, err, err_len))
        return -1;
    for (const setting &s : settings)
        if (visit(ctx, s.section.c_str(), s.key.c_str(), s.text.c_str(), s.line))
            return -1;
    return 0;
}

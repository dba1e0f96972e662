// parse_html: a small forgiving HTML reader, not a full HTML5 tree builder. It only needs to know
// where text is, where blocks and headings start and end, and which containers to leave out; it never
// builds a tree, so malformed markup costs at most some misplaced breaks. One pass, no allocation per
// tag except the names of open containers.

#include <algorithm>
#include <array>
#include <unordered_map>

#include "ingest/document.hpp"
#include "ingest/sections.hpp"

namespace chatstream::ingest {

namespace {

constexpr std::string_view kPathSeparator = " \xE2\x80\xBA ";  // " › "

using detail::append_utf8;
using detail::Section;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_alnum(char c) {
  return is_alpha(c) || (c >= '0' && c <= '9');
}
char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (lower(s[i]) != prefix[i]) return false;
  }
  return true;
}

const std::unordered_map<std::string_view, char32_t>& named_entities() {
  // clang-format off
  static const std::unordered_map<std::string_view, char32_t> map = {
      {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}, {"nbsp", ' '},
      {"ensp", ' '}, {"emsp", ' '}, {"thinsp", ' '}, {"shy", 0}, {"zwnj", 0}, {"zwj", 0}, {"lrm", 0},
      {"rlm", 0}, {"copy", 0xA9}, {"reg", 0xAE}, {"trade", 0x2122}, {"hellip", 0x2026}, {"mdash", 0x2014},
      {"ndash", 0x2013}, {"minus", 0x2212}, {"lsquo", 0x2018}, {"rsquo", 0x2019}, {"sbquo", 0x201A},
      {"ldquo", 0x201C}, {"rdquo", 0x201D}, {"bdquo", 0x201E}, {"laquo", 0xAB}, {"raquo", 0xBB},
      {"lsaquo", 0x2039}, {"rsaquo", 0x203A}, {"bull", 0x2022}, {"middot", 0xB7}, {"deg", 0xB0},
      {"plusmn", 0xB1}, {"times", 0xD7}, {"divide", 0xF7}, {"micro", 0xB5}, {"para", 0xB6},
      {"sect", 0xA7}, {"cent", 0xA2}, {"pound", 0xA3}, {"yen", 0xA5}, {"euro", 0x20AC},
      {"curren", 0xA4}, {"iexcl", 0xA1}, {"iquest", 0xBF}, {"brvbar", 0xA6}, {"uml", 0xA8},
      {"ordf", 0xAA}, {"ordm", 0xBA}, {"not", 0xAC}, {"macr", 0xAF}, {"acute", 0xB4}, {"cedil", 0xB8},
      {"sup1", 0xB9}, {"sup2", 0xB2}, {"sup3", 0xB3}, {"frac14", 0xBC}, {"frac12", 0xBD},
      {"frac34", 0xBE}, {"dagger", 0x2020}, {"Dagger", 0x2021}, {"permil", 0x2030}, {"prime", 0x2032},
      {"Prime", 0x2033}, {"larr", 0x2190}, {"uarr", 0x2191}, {"rarr", 0x2192}, {"darr", 0x2193},
      {"harr", 0x2194}, {"lArr", 0x21D0}, {"rArr", 0x21D2}, {"hArr", 0x21D4}, {"le", 0x2264},
      {"ge", 0x2265}, {"ne", 0x2260}, {"asymp", 0x2248}, {"equiv", 0x2261}, {"infin", 0x221E},
      {"sum", 0x2211}, {"radic", 0x221A}, {"forall", 0x2200}, {"exist", 0x2203}, {"empty", 0x2205},
      {"isin", 0x2208}, {"and", 0x2227}, {"or", 0x2228}, {"cap", 0x2229}, {"cup", 0x222A},
      {"alpha", 0x3B1}, {"beta", 0x3B2}, {"gamma", 0x3B3}, {"delta", 0x3B4}, {"epsilon", 0x3B5},
      {"lambda", 0x3BB}, {"mu", 0x3BC}, {"pi", 0x3C0}, {"sigma", 0x3C3}, {"tau", 0x3C4}, {"phi", 0x3C6},
      {"omega", 0x3C9}, {"Delta", 0x394}, {"Sigma", 0x3A3}, {"Omega", 0x3A9}, {"oelig", 0x153},
      {"OElig", 0x152}, {"scaron", 0x161}, {"Scaron", 0x160}, {"Yuml", 0x178}, {"fnof", 0x192},
      {"circ", 0x2C6}, {"tilde", 0x2DC}, {"loz", 0x25CA}, {"spades", 0x2660}, {"clubs", 0x2663},
      {"hearts", 0x2665}, {"diams", 0x2666},
      // Latin-1 letters.
      {"Agrave", 0xC0}, {"Aacute", 0xC1}, {"Acirc", 0xC2}, {"Atilde", 0xC3}, {"Auml", 0xC4},
      {"Aring", 0xC5}, {"AElig", 0xC6}, {"Ccedil", 0xC7}, {"Egrave", 0xC8}, {"Eacute", 0xC9},
      {"Ecirc", 0xCA}, {"Euml", 0xCB}, {"Igrave", 0xCC}, {"Iacute", 0xCD}, {"Icirc", 0xCE},
      {"Iuml", 0xCF}, {"ETH", 0xD0}, {"Ntilde", 0xD1}, {"Ograve", 0xD2}, {"Oacute", 0xD3},
      {"Ocirc", 0xD4}, {"Otilde", 0xD5}, {"Ouml", 0xD6}, {"Oslash", 0xD8}, {"Ugrave", 0xD9},
      {"Uacute", 0xDA}, {"Ucirc", 0xDB}, {"Uuml", 0xDC}, {"Yacute", 0xDD}, {"THORN", 0xDE},
      {"szlig", 0xDF}, {"agrave", 0xE0}, {"aacute", 0xE1}, {"acirc", 0xE2}, {"atilde", 0xE3},
      {"auml", 0xE4}, {"aring", 0xE5}, {"aelig", 0xE6}, {"ccedil", 0xE7}, {"egrave", 0xE8},
      {"eacute", 0xE9}, {"ecirc", 0xEA}, {"euml", 0xEB}, {"igrave", 0xEC}, {"iacute", 0xED},
      {"icirc", 0xEE}, {"iuml", 0xEF}, {"eth", 0xF0}, {"ntilde", 0xF1}, {"ograve", 0xF2},
      {"oacute", 0xF3}, {"ocirc", 0xF4}, {"otilde", 0xF5}, {"ouml", 0xF6}, {"oslash", 0xF8},
      {"ugrave", 0xF9}, {"uacute", 0xFA}, {"ucirc", 0xFB}, {"uuml", 0xFC}, {"yacute", 0xFD},
      {"thorn", 0xFE}, {"yuml", 0xFF},
  };
  // clang-format on
  return map;
}

// HTML maps numeric references to 0x80–0x9F as Windows-1252 (what such pages meant).
// clang-format off
constexpr std::array<char32_t, 32> kWindows1252 = {
    0x20AC, 0xFFFD, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0xFFFD, 0x017D, 0xFFFD, 0xFFFD, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0xFFFD, 0x017E, 0x0178};
// clang-format on

// Decodes the character reference at text[0] == '&'. Returns the bytes consumed (0: not a reference,
// the '&' is literal) and appends the decoded text.
size_t decode_entity(std::string_view text, std::string& out) {
  size_t semi = text.find(';', 1);
  if (semi == std::string_view::npos || semi > 33) return 0;
  std::string_view body = text.substr(1, semi - 1);
  if (body.size() >= 2 && body[0] == '#') {
    bool hex = body[1] == 'x' || body[1] == 'X';
    std::string_view digits = body.substr(hex ? 2 : 1);
    if (digits.empty() || digits.size() > 8) return 0;
    uint32_t cp = 0;
    for (char c : digits) {
      int v;
      if (c >= '0' && c <= '9')
        v = c - '0';
      else if (hex && c >= 'a' && c <= 'f')
        v = c - 'a' + 10;
      else if (hex && c >= 'A' && c <= 'F')
        v = c - 'A' + 10;
      else
        return 0;
      cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(v);
    }
    if (cp >= 0x80 && cp <= 0x9F) cp = kWindows1252[cp - 0x80];
    if (cp == '\t' || cp == '\n' || cp == '\r') {
      out += ' ';  // as whitespace; a <pre> newline written as &#10; is rare enough
    } else if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      append_utf8(out, 0xFFFD);
    } else if (cp >= 0x20) {
      append_utf8(out, cp);
    }
    return semi + 1;
  }
  auto it = named_entities().find(body);
  if (it == named_entities().end()) return 0;
  if (it->second != 0) append_utf8(out, it->second);
  return semi + 1;
}

std::string decode_entities(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (text[i] == '&') {
      if (size_t used = decode_entity(text.substr(i), out)) {
        i += used;
        continue;
      }
    }
    out += text[i++];
  }
  return out;
}

bool has_class(std::string_view classes, std::string_view name) {
  size_t i = 0;
  while (i < classes.size()) {
    while (i < classes.size() && is_space(classes[i])) ++i;
    size_t begin = i;
    while (i < classes.size() && !is_space(classes[i])) ++i;
    if (classes.substr(begin, i - begin) == name) return true;
  }
  return false;
}

enum class Kind {
  kInline,
  kParagraph,
  kLine,
  kPre,
  kHeading,
  kSkip,
  kContainer,
  kHead,
  kBody,
  kRawSkip,
  kTitle
};

Kind kind_of(std::string_view tag) {
  // clang-format off
  static const std::unordered_map<std::string_view, Kind> map = {
      {"p", Kind::kParagraph},       {"section", Kind::kParagraph}, {"article", Kind::kParagraph},
      {"aside", Kind::kParagraph},   {"header", Kind::kParagraph},  {"footer", Kind::kParagraph},
      {"main", Kind::kParagraph},    {"blockquote", Kind::kParagraph}, {"ul", Kind::kParagraph},
      {"ol", Kind::kParagraph},      {"dl", Kind::kParagraph},      {"table", Kind::kParagraph},
      {"thead", Kind::kParagraph},   {"tbody", Kind::kParagraph},   {"tfoot", Kind::kParagraph},
      {"tr", Kind::kParagraph},      {"form", Kind::kParagraph},    {"fieldset", Kind::kParagraph},
      {"figure", Kind::kParagraph},  {"figcaption", Kind::kParagraph}, {"address", Kind::kParagraph},
      {"hr", Kind::kParagraph},      {"center", Kind::kParagraph},  {"caption", Kind::kParagraph},
      {"details", Kind::kParagraph}, {"summary", Kind::kParagraph}, {"h4", Kind::kParagraph},
      {"h5", Kind::kParagraph},      {"h6", Kind::kParagraph},      {"legend", Kind::kParagraph},
      {"br", Kind::kLine},           {"li", Kind::kLine},           {"dt", Kind::kLine},
      {"dd", Kind::kLine},           {"td", Kind::kLine},           {"th", Kind::kLine},
      {"option", Kind::kLine},       {"pre", Kind::kPre},           {"listing", Kind::kPre},
      {"xmp", Kind::kPre},           {"h1", Kind::kHeading},        {"h2", Kind::kHeading},
      {"h3", Kind::kHeading},        {"div", Kind::kContainer},     {"nav", Kind::kSkip},
      {"noscript", Kind::kSkip},     {"template", Kind::kSkip},     {"svg", Kind::kSkip},
      {"math", Kind::kSkip},         {"select", Kind::kSkip},       {"iframe", Kind::kSkip},
      {"object", Kind::kSkip},       {"canvas", Kind::kSkip},       {"head", Kind::kHead},
      {"body", Kind::kBody},         {"script", Kind::kRawSkip},    {"style", Kind::kRawSkip},
      {"textarea", Kind::kRawSkip},  {"title", Kind::kTitle},
  };
  // clang-format on
  auto it = map.find(tag);
  return it == map.end() ? Kind::kInline : it->second;
}

bool is_table_row(std::string_view tag) {
  return tag == "tr" || tag == "table" || tag == "thead" || tag == "tbody" || tag == "tfoot";
}

bool is_void(std::string_view tag) {
  static constexpr std::array<std::string_view, 14> kVoid = {"area",  "base",   "br",    "col",  "embed",
                                                             "hr",    "img",    "input", "link", "meta",
                                                             "param", "source", "track", "wbr"};
  return std::find(kVoid.begin(), kVoid.end(), tag) != kVoid.end();
}

// div classes of the PostgreSQL manual (DocBook XSL) that are navigation, not content: the links above
// and below every page, tables of contents, and the book index (thousands of terms, each a link).
bool is_boilerplate_div(std::string_view classes) {
  return has_class(classes, "navheader") || has_class(classes, "navfooter") || has_class(classes, "toc") ||
         has_class(classes, "index") || has_class(classes, "indexdiv");
}

// The chapter (or part) a page belongs to: the DocBook navigation header's second <th> ("Chapter 11.
// Indexes"), the first being the page's own title.
bool is_navheader_div(std::string_view classes) {
  return has_class(classes, "navheader");
}

bool is_admonition_div(std::string_view classes) {
  return has_class(classes, "note") || has_class(classes, "tip") || has_class(classes, "warning") ||
         has_class(classes, "caution") || has_class(classes, "important");
}

struct Tag {
  std::string name;  // lowercased
  bool end = false;
  bool self_closing = false;
  std::string classes;
  std::string id;
};

class HtmlReader {
 public:
  explicit HtmlReader(std::string_view html) : html_(html) { sections_.push_back({}); }

  Document run(std::string_view fallback_title) {
    while (pos_ < html_.size()) {
      size_t lt = html_.find('<', pos_);
      if (lt == std::string_view::npos) lt = html_.size();
      if (lt > pos_) text(decode_entities(html_.substr(pos_, lt - pos_)));
      pos_ = lt;
      if (pos_ < html_.size()) markup();
    }
    end_heading();
    cells_ = 0;
    glue_ = false;
    paragraph_break();
    Document doc;
    doc.title = !title_.empty()      ? title_
                : !first_h1_.empty() ? first_h1_
                                     : detail::collapse_whitespace(fallback_title);
    doc.chunks = detail::chunk_sections(sections_);
    return doc;
  }

 private:
  struct Open {
    std::string name;
    bool skip;
    bool admonition;
    bool navheader = false;
    std::string id;
  };

  void markup() {
    std::string_view rest = html_.substr(pos_);
    if (rest.starts_with("<!--")) {
      size_t end = html_.find("-->", pos_ + 4);
      pos_ = end == std::string_view::npos ? html_.size() : end + 3;
      return;
    }
    if (rest.starts_with("<![CDATA[")) {
      size_t end = html_.find("]]>", pos_ + 9);
      size_t stop = end == std::string_view::npos ? html_.size() : end;
      text(std::string(html_.substr(pos_ + 9, stop - pos_ - 9)));
      pos_ = end == std::string_view::npos ? html_.size() : end + 3;
      return;
    }
    if (rest.starts_with("<!") || rest.starts_with("<?")) {
      size_t end = html_.find('>', pos_);
      pos_ = end == std::string_view::npos ? html_.size() : end + 1;
      return;
    }
    bool closing = rest.size() > 1 && rest[1] == '/';
    size_t name_at = closing ? 2 : 1;
    if (rest.size() <= name_at || !is_alpha(rest[name_at])) {
      text("<");  // a literal "<", as in "a < b"
      ++pos_;
      return;
    }
    Tag tag;
    tag.end = closing;
    size_t i = pos_ + name_at;
    while (i < html_.size() && (is_alnum(html_[i]) || html_[i] == '-' || html_[i] == ':'))
      tag.name += lower(html_[i++]);
    i = read_attributes(i, tag);
    pos_ = i;
    handle(tag);
  }

  // Reads attributes up to and including '>'; keeps only class.
  size_t read_attributes(size_t i, Tag& tag) {
    while (i < html_.size()) {
      char c = html_[i];
      if (c == '>') return i + 1;
      if (c == '/' && i + 1 < html_.size() && html_[i + 1] == '>') {
        tag.self_closing = true;
        return i + 2;
      }
      if (is_space(c) || c == '/') {
        ++i;
        continue;
      }
      size_t name_begin = i;
      while (i < html_.size() && !is_space(html_[i]) && html_[i] != '=' && html_[i] != '>' && html_[i] != '/')
        ++i;
      std::string name;
      for (size_t k = name_begin; k < i; ++k) name += lower(html_[k]);
      while (i < html_.size() && is_space(html_[i])) ++i;
      if (i >= html_.size() || html_[i] != '=') continue;
      ++i;
      while (i < html_.size() && is_space(html_[i])) ++i;
      size_t value_begin, value_end;
      if (i < html_.size() && (html_[i] == '"' || html_[i] == '\'')) {
        char quote = html_[i++];
        value_begin = i;
        size_t close = html_.find(quote, i);
        value_end = close == std::string_view::npos ? html_.size() : close;
        i = close == std::string_view::npos ? html_.size() : close + 1;
      } else {
        value_begin = i;
        while (i < html_.size() && !is_space(html_[i]) && html_[i] != '>') ++i;
        value_end = i;
      }
      if (name == "class") tag.classes = decode_entities(html_.substr(value_begin, value_end - value_begin));
      if (name == "id") tag.id = decode_entities(html_.substr(value_begin, value_end - value_begin));
    }
    return i;
  }

  // The text of a raw-text element (script, style, title…) up to its end tag, which is consumed.
  std::string_view raw_text(std::string_view name) {
    size_t i = pos_;
    while (true) {
      size_t lt = html_.find("</", i);
      if (lt == std::string_view::npos) {
        std::string_view all = html_.substr(pos_);
        pos_ = html_.size();
        return all;
      }
      std::string_view after = html_.substr(lt + 2);
      if (starts_with_nocase(after, name) && (after.size() == name.size() || !is_alnum(after[name.size()]))) {
        std::string_view inner = html_.substr(pos_, lt - pos_);
        size_t gt = html_.find('>', lt);
        pos_ = gt == std::string_view::npos ? html_.size() : gt + 1;
        return inner;
      }
      i = lt + 2;
    }
  }

  void handle(const Tag& tag) {
    Kind kind = kind_of(tag.name);
    if (!tag.end) {
      switch (kind) {
        case Kind::kRawSkip:
          if (!tag.self_closing) raw_text(tag.name);
          return;
        case Kind::kTitle: {
          if (tag.self_closing) return;
          std::string title = detail::collapse_whitespace(decode_entities(raw_text("title")));
          if (title_.empty() && skip_ == 0) title_ = std::move(title);
          return;
        }
        case Kind::kHead:
          in_head_ = !tag.self_closing;
          return;
        case Kind::kBody:
          in_head_ = false;
          return;
        default:
          break;
      }
    }
    if (kind == Kind::kHead && tag.end) {
      in_head_ = false;
      return;
    }
    if (kind == Kind::kContainer || kind == Kind::kSkip) {
      if (tag.end) {
        close_container(tag.name);
      } else if (!tag.self_closing) {
        bool skip = kind == Kind::kSkip || is_boilerplate_div(tag.classes);
        bool admonition = kind == Kind::kContainer && is_admonition_div(tag.classes);
        bool navheader = kind == Kind::kContainer && is_navheader_div(tag.classes);
        open_.push_back({tag.name, skip, admonition, navheader, tag.id});
        skip_ += skip ? 1 : 0;
        admonitions_ += admonition ? 1 : 0;
        navheaders_ += navheader ? 1 : 0;
      }
      if (!in_heading()) paragraph_break();
      return;
    }
    if (navheaders_ > 0 && tag.name == "th") {
      if (!tag.end) {
        nav_cells_.emplace_back();
        in_nav_cell_ = true;
      } else {
        in_nav_cell_ = false;
      }
      return;
    }
    if (skip_ > 0 || in_head_) return;
    switch (kind) {
      case Kind::kParagraph:
        if (in_heading()) break;
        if (is_table_row(tag.name)) cells_ = 0;
        paragraph_break();
        break;
      case Kind::kLine:
        if (in_heading()) {
          heading_space_ = true;
          break;
        }
        if (tag.name == "td" || tag.name == "th") {
          // A row reads as one line, its cells separated by " | " ("shared_buffers | 128MB | …"); what a
          // cell holds on several lines (a function's signature, description, example) keeps them.
          if (!tag.end) {
            ++cells_;
            while (!paragraph_.empty() && paragraph_.back() == '\n') paragraph_.pop_back();
            if (!paragraph_.empty()) paragraph_ += " | ";
            pending_space_ = false;
          } else if (cells_ > 0) {
            --cells_;
          }
          break;
        }
        if (!tag.end || tag.name != "br") line_break();
        // A term stays with its definition: the first break of the <dd> that follows is only a line.
        if (tag.end && tag.name == "dt") glue_ = true;
        break;
      case Kind::kPre:
        if (in_heading()) break;
        paragraph_break();
        if (!tag.end && !tag.self_closing && !is_void(tag.name)) {
          ++pre_;
          pre_start_ = true;
        } else if (tag.end && pre_ > 0) {
          --pre_;
        }
        break;
      case Kind::kHeading:
        if (!tag.end) {
          end_heading();
          glue_ = false;
          cells_ = 0;
          paragraph_break();
          heading_level_ = tag.name[1] - '0';
          // The section's link: the heading's own id, else that of the nearest container holding it
          // (DocBook: <div class="sect1" id="INDEXES-PARTIAL"> … <h2>).
          heading_anchor_ = tag.id;
          for (size_t k = open_.size(); heading_anchor_.empty() && k-- > 0;) heading_anchor_ = open_[k].id;
          heading_for_admonition_ = admonitions_ > 0;
          heading_.clear();
          heading_space_ = false;
        } else if (heading_level_ > 0) {
          end_heading();
        }
        break;
      default:
        break;
    }
  }

  void close_container(std::string_view name) {
    for (size_t k = open_.size(); k-- > 0;) {
      if (open_[k].name != name) continue;
      for (size_t j = open_.size(); j-- > k;) {
        skip_ -= open_[j].skip ? 1 : 0;
        admonitions_ -= open_[j].admonition ? 1 : 0;
        navheaders_ -= open_[j].navheader ? 1 : 0;
      }
      open_.resize(k);
      return;
    }
  }

  bool in_heading() const { return heading_level_ > 0; }

  std::string chapter() const {
    if (nav_cells_.size() < 2) return {};
    return detail::collapse_whitespace(nav_cells_[1]);
  }

  void end_heading() {
    if (!in_heading()) return;
    std::string heading = detail::collapse_whitespace(heading_);
    int level = heading_level_;
    heading_level_ = 0;
    heading_.clear();
    if (heading.empty()) return;
    if (heading_for_admonition_) {
      prefix_ = heading + ": ";
      return;
    }
    if (level == 1 && first_h1_.empty()) first_h1_ = heading;
    paragraph_break();
    // The section's heading is its path: the chapter, then the headings above it on the page.
    while (!path_.empty() && path_.back().first >= level) path_.pop_back();
    path_.emplace_back(level, std::move(heading));
    std::string full = chapter();
    auto add = [&full](const std::string& part) {
      if (!full.empty()) full += kPathSeparator;
      full += part;
    };
    // The page itself, when its headings do not start with its title (a reference page: "ALTER TABLE"
    // is the first <h2>, then "Synopsis", "Description" replace it at the same level).
    if (!title_.empty() && path_.front().second != title_) add(title_);
    for (const auto& [_, part] : path_) add(part);
    sections_.push_back({std::move(full), {}, heading_anchor_});
  }

  void text(std::string_view t) {
    if (in_nav_cell_ && navheaders_ > 0 && !nav_cells_.empty()) {
      nav_cells_.back() += t;
      return;
    }
    if (skip_ > 0 || in_head_) return;
    if (in_heading()) {
      if (heading_space_) heading_ += ' ';
      heading_space_ = false;
      heading_ += t;
      return;
    }
    if (pre_ > 0) {
      for (char c : t) {
        if (pre_start_) {
          pre_start_ = false;
          if (c == '\n') continue;  // HTML drops the newline right after <pre>
        }
        if (c == '\r') continue;
        if (paragraph_.empty() && !prefix_.empty()) take_prefix();
        if (!is_space(c)) glue_ = false;
        paragraph_ += c;
        paragraph_is_pre_ = true;
      }
      return;
    }
    for (char c : t) {
      if (is_space(c)) {
        pending_space_ = true;
        continue;
      }
      if (paragraph_.empty() && !prefix_.empty()) take_prefix();
      glue_ = false;
      if (pending_space_ && !paragraph_.empty() && paragraph_.back() != '\n') paragraph_ += ' ';
      pending_space_ = false;
      paragraph_ += c;
    }
  }

  void take_prefix() {
    paragraph_ += prefix_;
    prefix_.clear();
  }

  void line_break() {
    // A cell's first paragraph stays on its row's line, after the " | ".
    if (!paragraph_.empty() && paragraph_.back() != '\n' && !paragraph_.ends_with(" | ")) paragraph_ += '\n';
    pending_space_ = false;
  }

  void paragraph_break() {
    // Inside a table cell, and between a term and its definition, paragraphs are only lines: a row
    // (a function, its description and its example in the manual's tables) is read as one paragraph,
    // and a chunk never ends between them.
    if (cells_ > 0 || glue_) {
      line_break();
      return;
    }
    pending_space_ = false;
    pre_start_ = false;
    if (paragraph_.empty()) return;
    std::string cleaned;
    if (paragraph_is_pre_) {
      cleaned = detail::fence_code(paragraph_);
    } else {
      // Lines of flowing text: each trimmed, empty ones dropped.
      size_t begin = 0;
      while (begin <= paragraph_.size()) {
        size_t end = paragraph_.find('\n', begin);
        if (end == std::string::npos) end = paragraph_.size();
        std::string line =
            detail::collapse_whitespace(std::string_view(paragraph_).substr(begin, end - begin));
        if (!line.empty()) {
          if (!cleaned.empty()) cleaned += '\n';
          cleaned += line;
        }
        begin = end + 1;
      }
    }
    if (!cleaned.empty()) sections_.back().paragraphs.push_back(std::move(cleaned));
    paragraph_.clear();
    paragraph_is_pre_ = false;
  }

  std::string_view html_;
  size_t pos_ = 0;
  std::vector<Section> sections_;
  std::string title_, first_h1_;
  std::vector<Open> open_;
  int skip_ = 0;
  int admonitions_ = 0;
  bool in_head_ = false;
  int pre_ = 0;
  bool pre_start_ = false;
  std::string paragraph_;
  bool paragraph_is_pre_ = false;
  bool pending_space_ = false;
  std::string prefix_;  // an admonition's title, waiting for its first paragraph
  int cells_ = 0;       // open table cells
  bool glue_ = false;   // after a </dt>, until the definition's first text
  int heading_level_ = 0;
  bool heading_for_admonition_ = false;
  bool heading_space_ = false;
  std::string heading_;
  std::string heading_anchor_;
  int navheaders_ = 0;
  std::vector<std::string> nav_cells_;  // texts of the navigation header's <th> cells
  bool in_nav_cell_ = false;
  std::vector<std::pair<int, std::string>> path_;  // (level, text) of the headings above
};

}  // namespace

Document parse_html(std::string_view html, std::string_view fallback_title) {
  std::string clean = detail::clean_text(html);
  return HtmlReader(clean).run(fallback_title);
}

}  // namespace chatstream::ingest

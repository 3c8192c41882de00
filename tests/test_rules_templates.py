"""Route templates: rendering, the sandbox, and the bounds on output and work."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from faxflow_rules.templates import TemplateError, Templates
from test_rules_support import make_app, make_fax, problems_of, routes


def render_one(source: str, fax_text: str = "x", **fax_args: object) -> str:
    """Render one email subject through a real app; raise TemplateError with its message."""
    app = make_app(f"""
[[rule]]
name = "r"
when.text = {{ regex = '(?P<word>\\w+)' }}
[[rule.route]]
type = "email"
to = "a@example.org"
subject = '''{source}'''
""")
    [rendered] = routes(app, make_fax(fax_text, **fax_args))  # type: ignore[arg-type]
    if rendered.error:
        raise TemplateError(rendered.error)
    assert rendered.route is not None
    return str(rendered.route.options["subject"])


def test_variables_render() -> None:
    subject = render_one(
        "{{ rule }} {{ fax_id }} {{ topic }} {{ receiver }} {{ sender }} {{ csid | upper }} "
        "{{ pages }} {{ received.strftime('%H:%M %Z') }} {{ fields.word }} {{ labels | length }}",
        "Hello world", sender="+4930111", csid="acme", page_count=2,
        received=datetime(2026, 11, 27, 12, 0, tzinfo=UTC))
    # pages: the one page read, not the sender's claim of 2 (docs/rules.md)
    assert subject == "r f1 t +4989262080440 +4930111 ACME 1 13:00 CET Hello 0"


def test_plain_strings_and_non_strings_are_kept() -> None:
    app = make_app("""
[[rule]]
name = "r"
[[rule.route]]
type = "email"
to = ["a@example.org", "{{ 'b' }}@example.org"]
subject = "100% {plain} text"
""")
    [rendered] = routes(app, make_fax("x"))
    assert rendered.route is not None
    assert rendered.route.options == {"to": ["a@example.org", "b@example.org"],
                                      "subject": "100% {plain} text"}


def test_filename_filter_makes_untrusted_csid_safe() -> None:
    assert render_one("{{ csid | filename }}", csid="../../etc/passwd") == "etc_passwd"
    assert render_one("{{ csid | filename }}", csid="") == "_"


@pytest.mark.parametrize("source", [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ fields.__init__.__globals__ }}",
    "{{ received.__class__ }}",
    "{{ labels['__len__'] }}",
])
def test_sandbox_escapes_are_refused_at_load_time(source: str) -> None:
    problems = problems_of(f"""
[[rule]]
name = "evil"
[[rule.route]]
type = "email"
to = "a@example.org"
subject = "{source}"
""")
    assert problems, source
    assert all(p.path[:5] == ("rule", 0, "route", 0, "subject") for p in problems)
    assert all("rule 'evil'" in p.message for p in problems)


@pytest.mark.parametrize("source", [
    "{{ csid.__class__ }}",                       # dunder through a variable
    "{{ (csid|attr('__class__')) }}",              # attr filter is not offered
    "{{ cycler.__init__.__globals__ }}",           # no globals at all
    "{{ csid.format.__globals__ }}",
])
def test_sandbox_escapes_never_render(source: str) -> None:
    templates = Templates()
    try:
        template = templates.compile(source, set())
    except TemplateError:
        return  # refused at load time
    assert template is not None
    with pytest.raises(TemplateError):
        templates.render(template, {"csid": "x"})


def test_sandbox_refuses_unsafe_attribute_at_render_time() -> None:
    # Load-time checks catch literal dunders; a computed attribute name meets the sandbox.
    templates = Templates()
    template = templates.compile("{{ fields[csid] }}", set())
    assert template is not None
    with pytest.raises(TemplateError, match="__class__"):
        templates.render(template, {"csid": "__class__", "fields": {}})
    method = templates.compile("{{ csid.zfill(100) }}", set())
    assert method is not None
    with pytest.raises(TemplateError, match=r"sandbox|undefined|render"):
        templates.render(method, {"csid": "x"})


@pytest.mark.parametrize("source", [
    "{{ 'x' * 100000000 }}",
    "{{ ('ab' * 2000) * 2000 }}",
    "{{ [1] * 100000000 }}",
    "{{ 'aaaa'|replace('a', 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb')|replace('b', 'cccccccccccccccc')"
    "|replace('c', 'dddddddddddddddd') }}",
    "{{ 9 ** 999999 }}",
])
def test_huge_output_is_refused(source: str) -> None:
    with pytest.raises(TemplateError, match=r"refused by the sandbox|longer than|too large"):
        render_one(source)


def test_output_size_limit_is_configurable() -> None:
    templates = Templates(max_output=10)
    template = templates.compile("{{ csid }}{{ csid }}", set())
    assert template is not None
    assert templates.render(template, {"csid": "12345"}) == "1234512345"
    with pytest.raises(TemplateError, match="longer than 10"):
        templates.render(template, {"csid": "123456"})


@pytest.mark.parametrize(("source", "message"), [
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
     "loops"),
    ("{% set x = csid ~ csid %}{{ x }}", "set"),
    ("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", "macros"),
    ("{{ range(10) | list }}", "unknown variable 'range'"),
    ("{{ lipsum(1000) }}", "unknown variable 'lipsum'"),
    ("{{ csid | center(1000000000) }}", "no filter named 'center'"),
    ("{{ '%01000000000d' | format(1) }}", "no filter named 'format'"),
    ("{{ subject }}", "unknown variable 'subject'"),
    ("{{ fields.patient_id }}", "unknown field 'patient_id'"),
    ("{{ csid ", "syntax error"),
])
def test_load_time_template_problems(source: str, message: str) -> None:
    problems = problems_of(f"""
[[rule]]
name = "tpl"
[[rule.route]]
type = "email"
to = "a@example.org"
subject = '''{source}'''
""")
    assert len(problems) >= 1
    assert problems[0].path == ("rule", 0, "route", 0, "subject")
    assert problems[0].message.startswith("rule 'tpl': route.0.subject: ")
    assert message in problems[0].message


def test_undefined_at_render_time_is_a_clear_error() -> None:
    # A field some branch of `any` may not fill: known at load time, missing on this fax.
    app = make_app(r"""
[[rule]]
name = "r"
when.any = [{ text = { regex = 'PID-(?P<pid>\d+)' } }, { text = { any = ["referral"] } }]
[[rule.route]]
type = "email"
to = "a@example.org"
subject = "Patient {{ fields.pid }}"
[[rule.route]]
type = "email"
to = "a@example.org"
subject = "Patient {{ fields.pid | default('unknown') }}"
""")
    first, second = routes(app, make_fax("a referral"))
    assert first.route is None
    assert first.error == ("rule 'r': route 0 option 'subject': undefined: "
                           "'dict object' has no attribute 'pid'")
    assert second.route is not None and second.route.options["subject"] == "Patient unknown"

"""Ticketing destinations: ``jira``, ``zendesk`` and ``redmine``, one plugin module each
(registered separately), sharing `faxflow_tickets.common`."""

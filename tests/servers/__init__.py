"""Local stand-ins for the services destinations talk to (Jira, Zendesk, Redmine, a webhook
receiver), each a stdlib HTTP server on 127.0.0.1 in a thread, plus a fax builder for the
destination tests. They implement exactly the endpoints the plugins call."""

# pyftpdlib as an ftpnat `command` server: a template rendered per scenario.
# Every double-braced name is a placeholder ftpnat fills in
# (docs/cookbook/test-my-server-in-ci.md):
#   ftpnat run --server 'command:PYTHON' --server-config scenarios/servers/pyftpdlib.py \
#              --profile scenarios/profiles/pyftpdlib.toml
import logging

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

logging.basicConfig(
    filename="{{log}}", level=logging.DEBUG, format="%(asctime)s %(levelname)s %(message)s"
)

authorizer = DummyAuthorizer()
authorizer.add_anonymous("{{root}}", perm="elradfmw")


class Handler(FTPHandler):
    pass


Handler.authorizer = authorizer
Handler.banner = "pyftpdlib ready"
if "{{masquerade_address}}":
    Handler.masquerade_address = "{{masquerade_address}}"
if {{passive_lo}}:
    Handler.passive_ports = range({{passive_lo}}, {{passive_hi}} + 1)
Handler.permit_foreign_addresses = "{{allow_foreign_address}}" == "true"
Handler.permit_privileged_ports = False

server = FTPServer(("{{listen_ip}}", {{listen_port}}), Handler)
server.max_cons = {{max_clients}}
server.max_cons_per_ip = {{max_clients_per_ip}}
server.serve_forever()

"""The moto server (`python3 -m moto.server`'s arguments), with DynamoDB's requests
handled one at a time.

moto checks a conditional write's condition and then applies the write, with no lock
between the two steps, so two concurrent writes to one item can both pass their
condition: with the CPU busy, 7 of 300 pairs of `SET v = :one` conditional on
`v = :zero` both succeeded here (moto 5.2.1). DynamoDB never allows that, and the
contract tests race writes on purpose (two sends of one delivery at once: exactly one
is recorded). Handling DynamoDB's requests in turn keeps that promise on the emulator;
they are quick, and SQS (whose receives wait), SES and SNS are left concurrent.
"""

import threading

from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_one_at_a_time = threading.Lock()
_call_action = DynamoHandler.call_action


def _call_action_alone(self):
    with _one_at_a_time:
        return _call_action(self)


DynamoHandler.call_action = _call_action_alone

if __name__ == "__main__":
    main()

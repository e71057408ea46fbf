"""The local SQS server the integration tests use answers over real HTTP."""

from tests.support.services import SqsServer


def test_sqs_server_round_trip(sqs_server: SqsServer) -> None:
    client = sqs_server.client()
    url = sqs_server.new_queue()
    client.send_message(QueueUrl=url, MessageBody="hello")
    got = client.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in got] == ["hello"]

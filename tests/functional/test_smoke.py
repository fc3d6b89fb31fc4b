def test_ping_round_trip(make_member, make_client):
    creds = make_member()
    client, _ = make_client(creds)
    assert client.ping() == {"pong": True, "member_id": creds.member_id}

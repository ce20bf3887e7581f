import pymongo
import redis


def test_redis_fixture_answers(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    assert client.ping() is True


def test_secantus_fixture_stores(mongo_server):
    with pymongo.MongoClient(mongo_server.url) as client:
        collection = client["fixture_check"]["items"]
        collection.insert_one({"_id": 1})
        assert collection.count_documents({}) == 1
        client.drop_database("fixture_check")

// JSON-RPC 2.0 envelope checks and typed params: each bad input maps to its code and says why.
#include <gtest/gtest.h>

#include "rpc/jsonrpc.h"

namespace hwledger::rpc {
namespace {

json error_of(std::string_view line) {
  ParsedLine p = parse_line(line);
  EXPECT_FALSE(p.request) << line;
  return p.error_reply;
}

TEST(JsonRpc, ParsesARequest) {
  ParsedLine p =
      parse_line(R"({"jsonrpc":"2.0","id":7,"method":"generate","params":{"request_id":"a"}})");
  ASSERT_TRUE(p.request);
  EXPECT_TRUE(p.request->has_id);
  EXPECT_EQ(p.request->id, 7);
  EXPECT_EQ(p.request->method, "generate");
  EXPECT_EQ(p.request->params["request_id"], "a");
}

TEST(JsonRpc, NotificationHasNoIdAndParamsDefaultToAnObject) {
  ParsedLine p = parse_line(R"({"jsonrpc":"2.0","method":"health"})");
  ASSERT_TRUE(p.request);
  EXPECT_FALSE(p.request->has_id);
  EXPECT_TRUE(p.request->params.is_object());
  ParsedLine q = parse_line(R"({"jsonrpc":"2.0","id":null,"method":"health","params":null})");
  ASSERT_TRUE(q.request);
  EXPECT_TRUE(q.request->has_id);  // id null is still a request (answered with id null)
}

TEST(JsonRpc, InvalidJsonIsAParseErrorWithIdNull) {
  json e = error_of(R"({"jsonrpc":"2.0","id":1,"method":)");
  EXPECT_EQ(e["error"]["code"], kParseError);
  EXPECT_TRUE(e["id"].is_null());
  EXPECT_TRUE(e["error"]["data"]["reason"].is_string());
  EXPECT_EQ(error_of("\xff\xfe")["error"]["code"], kParseError);
  EXPECT_EQ(error_of("{\"jsonrpc\":\"2.0\",\"method\":\"a\xc3\"}")["error"]["code"],
            kParseError);  // bad UTF-8
}

TEST(JsonRpc, NonObjectsAndBatchesAreInvalidRequests) {
  EXPECT_EQ(error_of("[1,2]")["error"]["code"], kInvalidRequest);
  EXPECT_EQ(error_of(R"("health")")["error"]["code"], kInvalidRequest);
  EXPECT_EQ(error_of("42")["error"]["code"], kInvalidRequest);
}

TEST(JsonRpc, EnvelopeErrorsKeepTheIdWhenItCouldBeRead) {
  json e = error_of(R"({"id":"x","method":"health"})");  // no "jsonrpc"
  EXPECT_EQ(e["error"]["code"], kInvalidRequest);
  EXPECT_EQ(e["id"], "x");
  EXPECT_EQ(e["error"]["data"]["field"], "jsonrpc");
  e = error_of(R"({"jsonrpc":"1.0","id":3,"method":"health"})");
  EXPECT_EQ(e["id"], 3);
  e = error_of(R"({"jsonrpc":"2.0","id":3,"method":5})");
  EXPECT_EQ(e["error"]["data"]["field"], "method");
  e = error_of(R"({"jsonrpc":"2.0","id":3})");
  EXPECT_EQ(e["error"]["data"]["field"], "method");
  e = error_of(R"({"jsonrpc":"2.0","id":3,"result":{}})");
  EXPECT_NE(e["error"]["data"]["reason"].get<std::string>().find("responses"), std::string::npos);
}

TEST(JsonRpc, BadIdTypesAreRefusedWithIdNull) {
  json e = error_of(R"({"jsonrpc":"2.0","id":{"a":1},"method":"health"})");
  EXPECT_EQ(e["error"]["code"], kInvalidRequest);
  EXPECT_TRUE(e["id"].is_null());
  EXPECT_EQ(e["error"]["data"]["field"], "id");
  EXPECT_EQ(error_of(R"({"jsonrpc":"2.0","id":true,"method":"health"})")["error"]["code"],
            kInvalidRequest);
}

TEST(JsonRpc, ParamsMustBeAnObject) {
  json e = error_of(R"({"jsonrpc":"2.0","id":1,"method":"health","params":[1]})");
  EXPECT_EQ(e["error"]["code"], kInvalidParams);
  EXPECT_EQ(e["id"], 1);
  EXPECT_EQ(error_of(R"({"jsonrpc":"2.0","id":1,"method":"health","params":3})")["error"]["code"],
            kInvalidRequest);
}

TEST(JsonRpc, DeepNestingIsRefusedBeforeParsing) {
  std::string deep =
      R"({"jsonrpc":"2.0","id":1,"method":"x","params":{"a":)" + std::string(100000, '[');
  json e = error_of(deep);
  EXPECT_EQ(e["error"]["code"], kInvalidRequest);
  // Brackets inside strings do not count.
  std::string in_string =
      R"({"jsonrpc":"2.0","id":1,"method":"x","params":{"a":")" + std::string(1000, '[') + "\"}}";
  EXPECT_TRUE(parse_line(in_string).request);
}

TEST(JsonRpc, RepliesAndNotificationsHaveTheJsonRpcShape) {
  EXPECT_EQ(make_result(5, {{"ok", true}}),
            json::parse(R"({"jsonrpc":"2.0","id":5,"result":{"ok":true}})"));
  json e = make_error("a", RpcError(kNoModel, "no model", {{"reason", "r"}}));
  EXPECT_EQ(
      e,
      json::parse(
          R"({"jsonrpc":"2.0","id":"a","error":{"code":-32001,"message":"no model","data":{"reason":"r"}}})"));
  EXPECT_FALSE(make_error(1, kParseError, "x")["error"].contains("data"));
  EXPECT_EQ(make_notification("token", {{"index", 0}})["method"], "token");
}

TEST(JsonRpc, ToLineReplacesInvalidUtf8InsteadOfThrowing) {
  std::string line = to_line(json{{"text", std::string("a\xff"
                                                       "b")}});
  EXPECT_EQ(line,
            "{\"text\":\"a\xef\xbf\xbd"
            "b\"}");
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

void expect_invalid(const std::function<void()>& f, const std::string& field) {
  try {
    f();
    ADD_FAILURE() << "no error for " << field;
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), kInvalidParams);
    EXPECT_EQ(e.data()["field"], field);
    EXPECT_NE(e.message().find(field), std::string::npos) << e.message();
  }
}

TEST(JsonRpcParams, TypedAccessNamesTheFieldOnError) {
  json p = json::parse(
      R"({"s":"x","i":5,"f":0.5,"b":true,"n":null,"neg":-1,"big":18446744073709551615})");
  Params params(p);
  EXPECT_EQ(params.string("s"), "x");
  EXPECT_EQ(params.integer("i", 0, 10), 5);
  EXPECT_EQ(params.opt_number("f", 0, 1), 0.5);
  EXPECT_EQ(params.opt_number("i", 0, 10), 5.0);
  EXPECT_EQ(params.opt_bool("b"), true);
  EXPECT_FALSE(params.has("n"));  // null counts as absent
  EXPECT_FALSE(params.opt_string("missing"));
  EXPECT_EQ(params.opt_unsigned("big"), 18446744073709551615ull);
  expect_invalid([&] { params.string("i"); }, "i");
  expect_invalid([&] { params.string("missing"); }, "missing");
  expect_invalid([&] { params.integer("s", 0, 10); }, "s");
  expect_invalid([&] { params.integer("f", 0, 10); }, "f");  // 0.5 is not an integer
  expect_invalid([&] { params.integer("i", 6, 10); }, "i");
  expect_invalid([&] { params.integer("big", 0, 10); }, "big");
  expect_invalid([&] { params.opt_unsigned("neg"); }, "neg");
  expect_invalid([&] { params.opt_number("i", 0, 1); }, "i");
  expect_invalid([&] { params.opt_bool("s"); }, "s");
  expect_invalid([&] { params.string("s", 0); }, "s");  // longer than the limit
}

}  // namespace
}  // namespace hwledger::rpc

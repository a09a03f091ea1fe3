"""Copy-ready client programs for a model page: cURL, JavaScript fetch, Python requests, PHP cURL, C# HttpClient
and Go net/http. Pure: a payload, the endpoint URL and an API key in, source text out.

Each program sends the page's payload byte for byte as JSON (embedded without any escaping the language could
misread: a quoted heredoc, a nowdoc, a verbatim string with doubled quotes, a Go raw string split around
backticks, or a JSON literal that is also a valid JavaScript/Python literal) and handles both answers: when the
payload asks for `"stream": true` it reads the Server-Sent Events line by line until `data: [DONE]` and prints
each `delta.content` as it arrives; otherwise it prints the JSON answer. A non-200 answer prints the error body.
tests/test_modeldocs_examples.py runs them against a live gateway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

PLACEHOLDER_KEY = "omx_live_xxx"


@dataclass(frozen=True, slots=True)
class Example:
    slug: str  # an id for the page's anchors and the tests
    label: str  # the page's heading
    how_to_run: str
    code: str


def payload_json(payload: dict[str, Any]) -> str:
    """The page's "Example JSON payload" text (4-space indent, like the reference page; UTF-8 kept as is)."""
    return json.dumps(payload, indent=4, ensure_ascii=False)


def build_examples(*, payload: dict[str, Any], endpoint: str, api_key: str = PLACEHOLDER_KEY) -> tuple[Example, ...]:
    text = payload_json(payload)
    stream = payload.get("stream") is True
    return (
        Example("curl", "cURL", "Paste into a shell (bash, zsh, sh).", _curl(text, endpoint, api_key, stream)),
        Example(
            "javascript",
            "JavaScript fetch",
            "Node.js 18+: save as example.mjs and run `node example.mjs` (or paste into a module).",
            _javascript(text, endpoint, api_key, stream),
        ),
        Example(
            "python",
            "Python requests",
            "`pip install requests`, save as example.py and run `python example.py`.",
            _python(payload, endpoint, api_key, stream),
        ),
        Example(
            "php",
            "PHP cURL",
            "PHP 7.3+ with the curl extension: save as example.php and run `php example.php`.",
            _php(text, endpoint, api_key, stream),
        ),
        Example(
            "csharp",
            "C# HttpClient",
            ".NET 6+: `dotnet new console`, replace Program.cs with this and run `dotnet run`.",
            _csharp(text, endpoint, api_key, stream),
        ),
        Example(
            "go",
            "Go net/http",
            "Go 1.16+: save as main.go and run `go run main.go`.",
            _go(text, endpoint, api_key, stream),
        ),
    )


# --- cURL ----------------------------------------------------------------------------------------------------------


def _curl(text: str, endpoint: str, api_key: str, stream: bool) -> str:
    # A quoted heredoc passes the JSON through untouched (no shell quoting to get wrong); pretty-printed JSON never
    # has a line that is exactly the delimiter. -N shows each event as it arrives.
    flags = "-sS -N" if stream else "-sS"
    return (
        f"curl {flags} {endpoint} \\\n"
        f'  -H "Authorization: Bearer {api_key}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        "  -d @- <<'JSON'\n"
        f"{text}\n"
        "JSON\n"
    )


# --- JavaScript ----------------------------------------------------------------------------------------------------

_JS_STREAM = """\
const reader = response.body.getReader();
const decoder = new TextDecoder();
let buffer = "";
let finished = false;
while (!finished) {
  const { value, done } = await reader.read();
  if (done) break;
  buffer += decoder.decode(value, { stream: true });
  let newline;
  while ((newline = buffer.indexOf("\\n")) >= 0) {
    const line = buffer.slice(0, newline).replace(/\\r$/, "");
    buffer = buffer.slice(newline + 1);
    if (!line.startsWith("data: ")) continue; // blank separators and ": keep-alive" comments
    const data = line.slice("data: ".length);
    if (data === "[DONE]") {
      finished = true;
      break;
    }
    const event = JSON.parse(data);
    if (event.error) throw new Error(event.error.message);
    for (const choice of event.choices) {
      if (choice.delta.content) process.stdout.write(choice.delta.content);
    }
  }
}
process.stdout.write("\\n");
"""

_JS_JSON = """\
const data = await response.json();
console.log(JSON.stringify(data, null, 2));
"""


def _javascript(text: str, endpoint: str, api_key: str, stream: bool) -> str:
    # JSON text is a valid JavaScript expression (ES2019+), so the payload is pasted as an object literal.
    return (
        f"const payload = {text};\n"
        "\n"
        f"const response = await fetch({json.dumps(endpoint)}, {{\n"
        '  method: "POST",\n'
        "  headers: {\n"
        f'    "Authorization": {json.dumps("Bearer " + api_key)},\n'
        '    "Content-Type": "application/json",\n'
        "  },\n"
        "  body: JSON.stringify(payload),\n"
        "});\n"
        "if (!response.ok) {\n"
        "  throw new Error(`${response.status}: ${await response.text()}`);\n"
        "}\n"
        "\n" + (_JS_STREAM if stream else _JS_JSON)
    )


# --- Python --------------------------------------------------------------------------------------------------------


def python_literal(value: Any, indent: int = 0) -> str:
    """`value` as Python source, laid out like json.dumps(indent=4): True/False/None instead of true/false/null.
    Strings go through json.dumps(ensure_ascii=False), whose escapes Python reads the same way."""
    pad = " " * (indent + 4)
    if value is True:
        return "True"
    if value is False:
        return "False"
    if value is None:
        return "None"
    if isinstance(value, str | int | float):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [
            f"{pad}{json.dumps(str(k), ensure_ascii=False)}: {python_literal(v, indent + 4)}" for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        items = [f"{pad}{python_literal(v, indent + 4)}" for v in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


_PY_STREAM = """\
with requests.post(URL, headers=HEADERS, json=payload, stream=True, timeout=600) as response:
    if response.status_code != 200:
        raise SystemExit(f"{response.status_code}: {response.text}")
    for raw in response.iter_lines():  # bytes: split on line ends only, decoded below as UTF-8
        line = raw.decode("utf-8")
        if not line.startswith("data: "):
            continue  # blank separators and ": keep-alive" comments
        data = line[len("data: ") :]
        if data == "[DONE]":
            break
        event = json.loads(data)
        if "error" in event:
            raise SystemExit(event["error"]["message"])
        for choice in event["choices"]:
            content = choice["delta"].get("content")
            if content:
                print(content, end="", flush=True)
    print()
"""

_PY_JSON = """\
response = requests.post(URL, headers=HEADERS, json=payload, timeout=600)
if response.status_code != 200:
    raise SystemExit(f"{response.status_code}: {response.text}")
print(json.dumps(response.json(), indent=2))
"""


def _python(payload: dict[str, Any], endpoint: str, api_key: str, stream: bool) -> str:
    return (
        "import json\n"
        "\n"
        "import requests\n"
        "\n"
        f"URL = {json.dumps(endpoint)}\n"
        f'HEADERS = {{"Authorization": {json.dumps("Bearer " + api_key)}, "Content-Type": "application/json"}}\n'
        "\n"
        f"payload = {python_literal(payload)}\n"
        "\n" + (_PY_STREAM if stream else _PY_JSON)
    )


# --- PHP -----------------------------------------------------------------------------------------------------------

_PHP_STREAM = """\
$buffer = '';
$ch = curl_init($url);
curl_setopt_array($ch, [
    CURLOPT_POST => true,
    CURLOPT_HTTPHEADER => $headers,
    CURLOPT_POSTFIELDS => $payload,
    CURLOPT_WRITEFUNCTION => function ($handle, $chunk) use (&$buffer) {
        $buffer .= $chunk;
        if (curl_getinfo($handle, CURLINFO_RESPONSE_CODE) !== 200) {
            return strlen($chunk); // an error answer: kept whole in $buffer
        }
        while (($newline = strpos($buffer, "\\n")) !== false) {
            $line = rtrim(substr($buffer, 0, $newline), "\\r");
            $buffer = substr($buffer, $newline + 1);
            if (strncmp($line, 'data: ', 6) !== 0) {
                continue; // blank separators and ": keep-alive" comments
            }
            $data = substr($line, 6);
            if ($data === '[DONE]') {
                continue;
            }
            $event = json_decode($data, true);
            if (isset($event['error'])) {
                fwrite(STDERR, $event['error']['message'] . PHP_EOL);
                continue;
            }
            foreach ($event['choices'] as $choice) {
                echo $choice['delta']['content'] ?? '';
            }
        }
        return strlen($chunk);
    },
]);
if (curl_exec($ch) === false) {
    fwrite(STDERR, curl_error($ch) . PHP_EOL);
    exit(1);
}
$status = curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
if ($status !== 200) {
    fwrite(STDERR, "$status: $buffer" . PHP_EOL);
    exit(1);
}
echo PHP_EOL;
"""

_PHP_JSON = """\
$ch = curl_init($url);
curl_setopt_array($ch, [
    CURLOPT_POST => true,
    CURLOPT_HTTPHEADER => $headers,
    CURLOPT_POSTFIELDS => $payload,
    CURLOPT_RETURNTRANSFER => true,
]);
$response = curl_exec($ch);
if ($response === false) {
    fwrite(STDERR, curl_error($ch) . PHP_EOL);
    exit(1);
}
$status = curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
if ($status !== 200) {
    fwrite(STDERR, "$status: $response" . PHP_EOL);
    exit(1);
}
echo json_encode(json_decode($response), JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), PHP_EOL;
"""


def _php_single(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _php(text: str, endpoint: str, api_key: str, stream: bool) -> str:
    # A nowdoc takes the JSON verbatim; its closing marker is the only line of its kind.
    return (
        "<?php\n"
        f"$url = {_php_single(endpoint)};\n"
        f"$headers = [{_php_single('Authorization: Bearer ' + api_key)}, 'Content-Type: application/json'];\n"
        "$payload = <<<'JSON'\n"
        f"{text}\n"
        "JSON;\n"
        "\n" + (_PHP_STREAM if stream else _PHP_JSON)
    )


# --- C# ------------------------------------------------------------------------------------------------------------

_CS_STREAM = """\
using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
if (!response.IsSuccessStatusCode)
{
    Console.Error.WriteLine($"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
    return 1;
}
using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
string? line;
while ((line = await reader.ReadLineAsync()) != null)
{
    if (!line.StartsWith("data: ")) continue; // blank separators and ": keep-alive" comments
    var data = line.Substring("data: ".Length);
    if (data == "[DONE]") break;
    using var evt = JsonDocument.Parse(data);
    if (evt.RootElement.TryGetProperty("error", out var error))
    {
        Console.Error.WriteLine(error.GetProperty("message").GetString());
        return 1;
    }
    foreach (var choice in evt.RootElement.GetProperty("choices").EnumerateArray())
    {
        if (choice.GetProperty("delta").TryGetProperty("content", out var content)
            && content.ValueKind == JsonValueKind.String)
        {
            Console.Write(content.GetString());
        }
    }
}
Console.WriteLine();
return 0;
"""

_CS_JSON = """\
using var response = await client.SendAsync(request);
var body = await response.Content.ReadAsStringAsync();
if (!response.IsSuccessStatusCode)
{
    Console.Error.WriteLine($"{(int)response.StatusCode}: {body}");
    return 1;
}
Console.WriteLine(body);
return 0;
"""


def _cs_string(text: str) -> str:
    return '@"' + text.replace('"', '""') + '"'


def _csharp(text: str, endpoint: str, api_key: str, stream: bool) -> str:
    return (
        "using System;\n"
        "using System.IO;\n"
        "using System.Net.Http;\n"
        "using System.Net.Http.Headers;\n"
        "using System.Text;\n"
        "using System.Text.Json;\n"
        "\n"
        f"var json = {_cs_string(text)};\n"
        "\n"
        "using var client = new HttpClient { Timeout = TimeSpan.FromMinutes(10) };\n"
        f"using var request = new HttpRequestMessage(HttpMethod.Post, {_cs_string(endpoint)});\n"
        f'request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", {_cs_string(api_key)});\n'
        'request.Content = new StringContent(json, Encoding.UTF8, "application/json");\n'
        + (_CS_STREAM if stream else _CS_JSON)
    )


# --- Go ------------------------------------------------------------------------------------------------------------

_GO_STREAM = """\
	scanner := bufio.NewScanner(resp.Body)
	scanner.Buffer(make([]byte, 0, 64*1024), 16*1024*1024) // events may be longer than the default 64 KiB
	for scanner.Scan() {
		line := scanner.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue // blank separators and ": keep-alive" comments
		}
		data := strings.TrimPrefix(line, "data: ")
		if data == "[DONE]" {
			break
		}
		var event struct {
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(data), &event); err != nil {
			panic(err)
		}
		if event.Error != nil {
			fmt.Fprintln(os.Stderr, event.Error.Message)
			os.Exit(1)
		}
		for _, choice := range event.Choices {
			fmt.Print(choice.Delta.Content)
		}
	}
	if err := scanner.Err(); err != nil {
		panic(err)
	}
	fmt.Println()
}
"""

_GO_JSON = """\
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		panic(err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, body, "", "  "); err != nil {
		panic(err)
	}
	fmt.Println(pretty.String())
}
"""


def _go_raw(text: str) -> str:
    # A raw string cannot hold a backtick: close it, add the backtick as "`", reopen.
    return "`" + text.replace("`", '` + "`" + `') + "`"


def _go(text: str, endpoint: str, api_key: str, stream: bool) -> str:
    imports = ["bufio", "bytes", "encoding/json", "fmt", "io", "net/http", "os", "strings"]
    if not stream:
        imports = ["bytes", "encoding/json", "fmt", "io", "net/http", "os"]
    return (
        "package main\n"
        "\n"
        "import (\n" + "".join(f'\t"{name}"\n' for name in imports) + ")\n"
        "\n"
        f"const payload = {_go_raw(text)}\n"
        "\n"
        "func main() {\n"
        f'\treq, err := http.NewRequest("POST", {json.dumps(endpoint)}, bytes.NewReader([]byte(payload)))\n'
        "\tif err != nil {\n"
        "\t\tpanic(err)\n"
        "\t}\n"
        f'\treq.Header.Set("Authorization", {json.dumps("Bearer " + api_key)})\n'
        '\treq.Header.Set("Content-Type", "application/json")\n'
        "\tresp, err := http.DefaultClient.Do(req)\n"
        "\tif err != nil {\n"
        "\t\tpanic(err)\n"
        "\t}\n"
        "\tdefer resp.Body.Close()\n"
        "\tif resp.StatusCode != http.StatusOK {\n"
        "\t\tbody, _ := io.ReadAll(resp.Body)\n"
        '\t\tfmt.Fprintf(os.Stderr, "%d: %s\\n", resp.StatusCode, body)\n'
        "\t\tos.Exit(1)\n"
        "\t}\n" + (_GO_STREAM if stream else _GO_JSON)
    )

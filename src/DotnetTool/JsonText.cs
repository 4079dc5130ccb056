using System.Text.Json;

namespace Quantize.Tool;

/// <summary>Small helpers for the commands' <c>--json</c> documents (compact, keys in a fixed order).</summary>
internal static class JsonText
{
    /// <summary>The document <paramref name="write"/> writes, as a string.</summary>
    public static string Of(Action<Utf8JsonWriter> write)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            write(json);
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>JSON has no infinity or NaN: those become null; others are rounded to 6 decimals.</summary>
    public static void Number(Utf8JsonWriter json, string name, double value)
    {
        if (double.IsFinite(value)) json.WriteNumber(name, Math.Round(value, 6));
        else json.WriteNull(name);
    }

    /// <summary>A shape as an array of numbers.</summary>
    public static void Shape(Utf8JsonWriter json, string name, ReadOnlySpan<int> shape)
    {
        json.WriteStartArray(name);
        foreach (int d in shape) json.WriteNumberValue(d);
        json.WriteEndArray();
    }
}

using Google.Protobuf;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.TensorFlow;

namespace Quantize.Core.Quantization.TensorFlow;

/// <summary>
/// Rewrites a serialized GraphDef node by node without re-encoding what does not change: every top-level field
/// (nodes, library, versions, fields we do not model) is copied as the original bytes, except the nodes a
/// replacement function returns new nodes for. So untouched nodes stay byte-identical, whatever encoder wrote them.
/// </summary>
internal static class GraphDefSplice
{
    private const int NodeField = 1;

    /// <summary>
    /// Copies <paramref name="graph"/>, replacing each node for which <paramref name="replace"/> returns a list by
    /// those nodes, in place (so the node order is kept, as graph_transforms' ReplaceMatchingOpTypes does).
    /// </summary>
    public static byte[] Rewrite(ReadOnlyMemory<byte> graph, string source, Func<NodeDef, IReadOnlyList<NodeDef>?> replace)
    {
        using var output = new MemoryStream(graph.Length + graph.Length / 8);
        var data = graph.Span;
        int position = 0;
        while (position < data.Length)
        {
            int start = position;
            ulong tag = ReadVarint(data, ref position, source);
            int field = (int)(tag >> 3), wireType = (int)(tag & 7);
            int payloadLength = Skip(data, ref position, wireType, source);
            int payloadStart = position - payloadLength;
            if (field == NodeField && wireType == 2)
            {
                var node = NodeDef.Parser.ParseFrom(graph.Slice(payloadStart, payloadLength).Span);
                if (replace(node) is { } nodes)
                {
                    foreach (var replacement in nodes)
                    {
                        byte[] bytes = replacement.ToByteArray();
                        WriteVarint(output, (NodeField << 3) | 2);
                        WriteVarint(output, (ulong)bytes.Length);
                        output.Write(bytes);
                    }
                    continue;
                }
            }
            output.Write(data[start..position]);
        }
        return output.ToArray();
    }

    private static void WriteVarint(Stream output, ulong value)
    {
        while (value >= 0x80)
        {
            output.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        output.WriteByte((byte)value);
    }

    /// <summary>Skips a field's payload (and, for length-delimited fields, its length); returns the payload's length.</summary>
    private static int Skip(ReadOnlySpan<byte> data, ref int position, int wireType, string source)
    {
        switch (wireType)
        {
            case 0:
                ReadVarint(data, ref position, source);
                return 0;
            case 1:
                position = Advance(data, position, 8, source);
                return 8;
            case 2:
                ulong length = ReadVarint(data, ref position, source);
                if (length > (ulong)(data.Length - position)) throw Corrupt(source);
                position += (int)length;
                return (int)length;
            case 5:
                position = Advance(data, position, 4, source);
                return 4;
            default:
                throw Corrupt(source);
        }
    }

    private static int Advance(ReadOnlySpan<byte> data, int position, int count, string source) =>
        data.Length - position >= count ? position + count : throw Corrupt(source);

    private static ulong ReadVarint(ReadOnlySpan<byte> data, ref int position, string source)
    {
        ulong value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (position >= data.Length) break;
            byte b = data[position++];
            value |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return value;
        }
        throw Corrupt(source);
    }

    private static InvalidModelException Corrupt(string source) =>
        new(source, "is not a valid TensorFlow GraphDef: the protobuf encoding is broken. The file may be truncated or corrupt; freeze the graph again.");
}

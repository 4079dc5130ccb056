namespace Quantize.Kernels.Models;

/// <summary>
/// Tells an ONNX <c>ModelProto</c> from a TensorFlow <c>GraphDef</c> by the top-level protobuf
/// fields the bytes hold, so a misnamed file still loads as what it is.
/// </summary>
internal static class ModelFormatDetector
{
    /// <summary>The detected format, or null when the bytes are not a protobuf message of either kind.</summary>
    public static ModelFormat? Detect(ReadOnlySpan<byte> data, string? fileName)
    {
        int onnx = 0, graphDef = 0;
        int position = 0;
        while (position < data.Length)
        {
            if (!TryReadVarint(data, ref position, out ulong tag)) return null;
            int field = (int)Math.Min(tag >> 3, int.MaxValue);
            int wireType = (int)(tag & 7);
            if (field == 0) return null;
            switch (wireType)
            {
                case 0:
                    if (!TryReadVarint(data, ref position, out _)) return null;
                    break;
                case 1:
                    if (data.Length - position < 8) return null;
                    position += 8;
                    break;
                case 2:
                    if (!TryReadVarint(data, ref position, out ulong length) || length > (ulong)(data.Length - position)) return null;
                    position += (int)length;
                    break;
                case 5:
                    if (data.Length - position < 4) return null;
                    position += 4;
                    break;
                default:
                    return null; // groups and invalid wire types occur in neither format
            }

            // Fields whose number and wire type only one of the two messages uses.
            switch (field, wireType)
            {
                case (1, 0) or (3, 2) or (5, 0) or (6, 2) or (7, 2) or (8, 2) or (14, 2) or (20, 2) or (25, 2) or (26, 2):
                    onnx++;
                    break;
                case (1, 2) or (3, 0) or (5, 2):
                    graphDef++;
                    break;
            }
        }

        if (onnx > graphDef) return ModelFormat.Onnx;
        if (graphDef > onnx) return ModelFormat.GraphDef;
        // Only fields both share (or none): fall back to the name.
        string extension = Path.GetExtension(fileName ?? "").ToLowerInvariant();
        return extension is ".pb" or ".pbtxt" or ".graphdef" ? ModelFormat.GraphDef : ModelFormat.Onnx;
    }

    private static bool TryReadVarint(ReadOnlySpan<byte> data, ref int position, out ulong value)
    {
        value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (position >= data.Length) return false;
            byte b = data[position++];
            value |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return true;
        }
        return false;
    }
}

using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// Decodes the four 8-bit float formats ONNX defines (E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ), each through a
/// 256-entry table built once from the format's bias and special values.
/// </summary>
internal static class Float8
{
    private static readonly Lazy<float[]> E4M3FN = new(() => Table(mantissaBits: 3, bias: 7, TensorElementType.Float8E4M3FN));
    private static readonly Lazy<float[]> E4M3FNUZ = new(() => Table(mantissaBits: 3, bias: 8, TensorElementType.Float8E4M3FNUZ));
    private static readonly Lazy<float[]> E5M2 = new(() => Table(mantissaBits: 2, bias: 15, TensorElementType.Float8E5M2));
    private static readonly Lazy<float[]> E5M2FNUZ = new(() => Table(mantissaBits: 2, bias: 16, TensorElementType.Float8E5M2FNUZ));

    public static bool IsFloat8(TensorElementType type) => type is TensorElementType.Float8E4M3FN or TensorElementType.Float8E4M3FNUZ
        or TensorElementType.Float8E5M2 or TensorElementType.Float8E5M2FNUZ;

    /// <summary>d[i] = the value of the <paramref name="type"/> byte x[i].</summary>
    public static void Decode(TensorElementType type, ReadOnlySpan<byte> x, Span<float> d)
    {
        var table = type switch
        {
            TensorElementType.Float8E4M3FN => E4M3FN.Value,
            TensorElementType.Float8E4M3FNUZ => E4M3FNUZ.Value,
            TensorElementType.Float8E5M2 => E5M2.Value,
            TensorElementType.Float8E5M2FNUZ => E5M2FNUZ.Value,
            _ => throw new ArgumentException($"{type.DisplayName()} is not an 8-bit float format.", nameof(type)),
        };
        for (int i = 0; i < x.Length; i++) d[i] = table[x[i]];
    }

    /// <summary>The value of one byte, straight from the format's definition (the tables' reference).</summary>
    public static float Value(byte bits, int mantissaBits, int bias, TensorElementType type)
    {
        bool fnuz = type is TensorElementType.Float8E4M3FNUZ or TensorElementType.Float8E5M2FNUZ;
        if (fnuz && bits == 0x80) return float.NaN; // the FNUZ formats have no negative zero; its pattern is NaN
        int exponentMask = (1 << (7 - mantissaBits)) - 1;
        int exponent = (bits >> mantissaBits) & exponentMask;
        int mantissa = bits & ((1 << mantissaBits) - 1);
        float sign = (bits & 0x80) != 0 ? -1f : 1f;
        if (type == TensorElementType.Float8E4M3FN && (bits & 0x7F) == 0x7F) return float.NaN; // no infinities; S.1111.111 is NaN
        if (type == TensorElementType.Float8E5M2 && exponent == exponentMask)
            return mantissa == 0 ? sign * float.PositiveInfinity : float.NaN; // IEEE-like
        float fraction = (float)mantissa / (1 << mantissaBits);
        return exponent == 0
            ? sign * fraction * MathF.Pow(2, 1 - bias)
            : sign * (1 + fraction) * MathF.Pow(2, exponent - bias);
    }

    private static float[] Table(int mantissaBits, int bias, TensorElementType type)
    {
        var table = new float[256];
        for (int b = 0; b < 256; b++) table[b] = Value((byte)b, mantissaBits, bias, type);
        return table;
    }
}

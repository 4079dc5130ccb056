namespace Quantize.Kernels.Gemm;

/// <summary>
/// An 8-bit B operand (K x N weights, int8 or uint8) packed once at load into panels of 16
/// columns, with its zero points (one, or one per column) and column sums.
/// Within a panel, each pair of K values takes 32 bytes: columns 0..7 then 8..15, each column's two
/// values adjacent, so that a widening load gives the 16-bit pairs <c>vpmaddwd</c> multiplies.
/// </summary>
public sealed class PackedInt8Matrix
{
    internal const int PanelWidth = 16;

    /// <summary>Bytes one panel takes per pair of K values.</summary>
    internal const int PanelStepBytes = 2 * PanelWidth;

    private PackedInt8Matrix(int depth, int columns, bool signed, int[] zeroPoints, int[] columnSums, byte[] data)
    {
        Depth = depth;
        Columns = columns;
        Signed = signed;
        ZeroPoints = zeroPoints;
        ColumnSums = columnSums;
        Data = data;
    }

    /// <summary>K: the rows of B.</summary>
    public int Depth { get; }

    /// <summary>N: the columns of B (and of C).</summary>
    public int Columns { get; }

    /// <summary>True for int8 weights, false for uint8.</summary>
    public bool Signed { get; }

    /// <summary>One zero point for all of B, or one per column.</summary>
    public IReadOnlyList<int> ZeroPoints { get; }

    /// <summary>The sum over K of each column's stored values (before the zero point is subtracted).</summary>
    public IReadOnlyList<int> ColumnSums { get; }

    internal byte[] Data { get; }

    /// <summary>The zero point of column <paramref name="n"/>.</summary>
    public int ZeroPoint(int n) => ZeroPoints.Count == 1 ? ZeroPoints[0] : ZeroPoints[n];

    /// <summary>Packs int8 weights given row-major as K x N, or N x K when <paramref name="transposed"/>.</summary>
    public static PackedInt8Matrix Pack(ReadOnlySpan<sbyte> b, int depth, int columns, ReadOnlySpan<int> zeroPoints, bool transposed = false) =>
        Pack(System.Runtime.InteropServices.MemoryMarshal.AsBytes(b), depth, columns, zeroPoints, transposed, signed: true);

    /// <summary>Packs uint8 weights given row-major as K x N, or N x K when <paramref name="transposed"/>.</summary>
    public static PackedInt8Matrix Pack(ReadOnlySpan<byte> b, int depth, int columns, ReadOnlySpan<int> zeroPoints, bool transposed = false) =>
        Pack(b, depth, columns, zeroPoints, transposed, signed: false);

    private static PackedInt8Matrix Pack(ReadOnlySpan<byte> b, int depth, int columns, ReadOnlySpan<int> zeroPoints, bool transposed, bool signed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(depth);
        ArgumentOutOfRangeException.ThrowIfNegative(columns);
        if (b.Length < (long)depth * columns) throw new ArgumentException($"B needs {(long)depth * columns} values, not {b.Length}.", nameof(b));
        if (zeroPoints.Length != 1 && zeroPoints.Length != columns)
            throw new ArgumentException($"B needs one zero point or {columns}, not {zeroPoints.Length}.", nameof(zeroPoints));

        int panels = (columns + PanelWidth - 1) / PanelWidth;
        int pairs = (depth + 1) / 2;
        var data = new byte[(long)panels * pairs * PanelStepBytes];
        var sums = new int[columns];
        for (int n = 0; n < columns; n++)
        {
            int panel = n / PanelWidth, j = n % PanelWidth;
            long column = (long)panel * pairs * PanelStepBytes + (j / 8) * 16 + (j % 8) * 2;
            int sum = 0;
            for (int k = 0; k < depth; k++)
            {
                byte value = transposed ? b[n * depth + k] : b[k * columns + n];
                data[column + (k / 2) * PanelStepBytes + (k & 1)] = value;
                sum += signed ? (sbyte)value : value;
            }
            sums[n] = sum;
        }
        return new PackedInt8Matrix(depth, columns, signed, zeroPoints.ToArray(), sums, data);
    }
}

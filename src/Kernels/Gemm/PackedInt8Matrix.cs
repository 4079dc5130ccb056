using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace Quantize.Kernels.Gemm;

/// <summary>How <see cref="PackedInt8Matrix"/> lays out B for the kernels.</summary>
public enum Int8PackFormat
{
    /// <summary>
    /// Pairs of K widened to 16 bits and multiplied by <c>vpmaddwd</c>: exact for every 8-bit operand,
    /// two instructions per 16 multiply-adds. The fallback when the quad format would need many corrections.
    /// </summary>
    Pairs16,

    /// <summary>
    /// Quads of K as bytes, for <c>vpmaddubsw</c> (AVX2), <c>vpdpbusd</c> (VNNI) and the dot-product
    /// instructions: three instructions per 32 multiply-adds on AVX2. B is stored as int8 and, on CPUs
    /// whose u8 x s8 instruction saturates, split into a part whose adjacent pairs cannot saturate plus
    /// a sparse correction (see <see cref="PackedInt8Matrix.CorrectionCount"/>).
    /// </summary>
    Quads,
}

/// <summary>
/// An 8-bit B operand (K x N weights, int8 or uint8) packed once at load into panels of 16 columns,
/// with its zero points (one, or one per column) and column sums, in one of two formats
/// (<see cref="Int8PackFormat"/>). The packer picks the fastest format that stays exact.
/// </summary>
public sealed class PackedInt8Matrix
{
    internal const int PanelWidth = 16;

    /// <summary>
    /// Quads that would need more corrections than this fraction of B's values take the Pairs16 format instead:
    /// each correction costs one multiply-add per row of A outside the kernel, and at about 1% they cost more
    /// than the quad kernel saves (measured; see docs/PERFORMANCE.md).
    /// </summary>
    internal const double MaxCorrectionFraction = 0.001;

    private PackedInt8Matrix(int depth, int columns, bool signed, Int8PackFormat format, int[] zeroPoints, int[] storedZeroPoints,
        int[] columnSums, byte[] data, SparseCorrection? correction)
        : this(depth, columns, signed, format, zeroPoints, storedZeroPoints, columnSums, CacheLineStorage.Place(data), correction)
    {
    }

    private PackedInt8Matrix(int depth, int columns, bool signed, Int8PackFormat format, int[] zeroPoints, int[] storedZeroPoints,
        int[] columnSums, (byte[] Data, int Offset) storage, SparseCorrection? correction)
    {
        (Data, Offset) = storage;
        Depth = depth;
        Columns = columns;
        Signed = signed;
        Format = format;
        ZeroPoints = zeroPoints;
        StoredZeroPoints = storedZeroPoints;
        StoredColumnSums = columnSums;
        Correction = correction;
    }

    /// <summary>
    /// True when the quad layout was made safe for a saturating u8 x s8 instruction (AVX2's <c>vpmaddubsw</c>);
    /// false when it was packed whole for VNNI, whose kernel (or the exact scalar twin) must then be used.
    /// </summary>
    internal bool SaturationSafe { get; private init; }

    /// <summary>
    /// Packed for A in 0..127 (<see cref="PackForSevenBitActivations"/>): no pair of products can saturate
    /// <c>vpmaddubsw</c>, so every weight stays in the byte-quad kernel. A must then never exceed 127.
    /// </summary>
    public bool ForSevenBitActivations { get; private init; }

    /// <summary>
    /// Byte quads packed whole (as for VNNI) for a CPU whose quad instruction saturates, with 8-bit A split at run time
    /// (<see cref="PackForMostlySmallActivations"/>, <see cref="Int8SplitActivationGemm"/>).
    /// </summary>
    internal bool SplitsActivations { get; private init; }

    /// <summary>K: the rows of B.</summary>
    public int Depth { get; }

    /// <summary>N: the columns of B (and of C).</summary>
    public int Columns { get; }

    /// <summary>True for int8 weights, false for uint8.</summary>
    public bool Signed { get; }

    /// <summary>The layout the kernels use.</summary>
    public Int8PackFormat Format { get; }

    /// <summary>One zero point for all of B, or one per column, as given.</summary>
    public IReadOnlyList<int> ZeroPoints { get; }

    /// <summary>How many values of B the quad format keeps outside the kernel as sparse corrections (0 otherwise).</summary>
    public int CorrectionCount => Correction?.Count ?? 0;

    /// <summary>Bytes one panel takes per step of K (a pair or a quad).</summary>
    internal int PanelStepBytes => Format == Int8PackFormat.Quads ? 4 * PanelWidth : 2 * PanelWidth;

    /// <summary>K values per packed step.</summary>
    internal int KStep => Format == Int8PackFormat.Quads ? 4 : 2;

    /// <summary>Zero points of the values as stored (uint8 B is stored as int8, shifted by -128, in the quad format), per column.</summary>
    internal int[] StoredZeroPoints { get; }

    /// <summary>Sum over K of each column's stored values (the full values, corrections included).</summary>
    internal int[] StoredColumnSums { get; }

    /// <summary>Sum over K of each column's values in the packed data (the full values minus the corrections).</summary>
    internal int[] KernelColumnSums
    {
        get
        {
            if (Correction is null) return StoredColumnSums;
            var sums = (int[])StoredColumnSums.Clone();
            for (int j = 0; j < Columns; j++)
            {
                for (int e = Correction.ColumnStarts[j]; e < Correction.ColumnStarts[j + 1]; e++) sums[j] -= Correction.Values[e];
            }
            return sums;
        }
    }

    internal byte[] Data { get; }

    /// <summary>Where the panels start in <see cref="Data"/>: a 64-byte boundary for large matrices (see <see cref="CacheLineStorage"/>).</summary>
    internal int Offset { get; }

    internal SparseCorrection? Correction { get; }

    /// <summary>
    /// The VNNI kernels' per-column terms for the A zero point used last (<see cref="Int8OutputStage.VnniTerms"/>): the same
    /// for every call with that zero point, so a model's MatMulInteger computes them once. Replaced whole, never changed.
    /// </summary>
    internal Jit.Int8VnniColumns? VnniColumns
    {
        get => Volatile.Read(ref _vnniColumns);
        set => Volatile.Write(ref _vnniColumns, value);
    }

    private Jit.Int8VnniColumns? _vnniColumns;

    /// <summary>The zero point of column <paramref name="n"/>, as given.</summary>
    public int ZeroPoint(int n) => ZeroPoints.Count == 1 ? ZeroPoints[0] : ZeroPoints[n];

    /// <summary>Packs int8 weights given row-major as K x N, or N x K when <paramref name="transposed"/>.</summary>
    public static PackedInt8Matrix Pack(ReadOnlySpan<sbyte> b, int depth, int columns, ReadOnlySpan<int> zeroPoints, bool transposed = false) =>
        Pack(System.Runtime.InteropServices.MemoryMarshal.AsBytes(b), depth, columns, zeroPoints, transposed, signed: true, null);

    /// <summary>Packs uint8 weights given row-major as K x N, or N x K when <paramref name="transposed"/>.</summary>
    public static PackedInt8Matrix Pack(ReadOnlySpan<byte> b, int depth, int columns, ReadOnlySpan<int> zeroPoints, bool transposed = false) =>
        Pack(b, depth, columns, zeroPoints, transposed, signed: false, null);

    /// <summary>
    /// Packs 8-bit weights (K x N row-major, or N x K when <paramref name="transposed"/>) for activations quantized to
    /// 7 bits (0..127, as <see cref="Int8Gemm.MultiplyDynamic"/> then does): the byte-quad layout without saturation
    /// corrections, fast on AVX2 for weights of any distribution (full-range weights would otherwise take 16-bit pairs).
    /// For the weights-only paths, where the runtime chooses how to quantize activations; not for ONNX's integer ops,
    /// whose activations are 8-bit by definition.
    /// </summary>
    public static PackedInt8Matrix PackForSevenBitActivations(ReadOnlySpan<byte> b, int depth, int columns, ReadOnlySpan<int> zeroPoints, bool signed,
        bool transposed = false)
    {
        var packed = Pack(b, depth, columns, zeroPoints, transposed, signed, Int8PackFormat.Quads, saturatingQuads: false);
        return new PackedInt8Matrix(packed) { ForSevenBitActivations = true, SaturationSafe = true };
    }

    /// <summary>
    /// Packs 8-bit weights for 8-bit activations that are mostly below 128: uint8 activations whose zero point is small,
    /// such as a calibrated ReLU output. Where the quad instruction saturates (AVX2's <c>vpmaddubsw</c>), full-range
    /// weights would otherwise take the 16-bit pairs (about 1% of their pairs could saturate); here they stay in byte
    /// quads and the GEMM splits A instead (<see cref="Int8SplitActivationGemm"/>), exactly, for any A. Elsewhere the
    /// same as <see cref="Pack(ReadOnlySpan{byte}, int, int, ReadOnlySpan{int}, bool)"/>.
    /// </summary>
    internal static PackedInt8Matrix PackForMostlySmallActivations(ReadOnlySpan<byte> b, int depth, int columns, ReadOnlySpan<int> zeroPoints, bool signed,
        bool transposed = false, bool? saturatingQuads = null)
    {
        if (!(saturatingQuads ?? QuadKernelsSaturate)) return Pack(b, depth, columns, zeroPoints, transposed, signed, null, saturatingQuads: false);
        var whole = Pack(b, depth, columns, zeroPoints, transposed, signed, null, saturatingQuads: false);
        if (whole.Format != Int8PackFormat.Quads) return whole;
        // Weights that no A can saturate (7-bit, say) need no split.
        var safe = Pack(b, depth, columns, zeroPoints, transposed, signed, Int8PackFormat.Quads, saturatingQuads: true);
        return safe.CorrectionCount == whole.CorrectionCount ? safe : new PackedInt8Matrix(whole) { SplitsActivations = true };
    }

    private PackedInt8Matrix(PackedInt8Matrix other)
        : this(other.Depth, other.Columns, other.Signed, other.Format, [.. other.ZeroPoints], other.StoredZeroPoints, other.StoredColumnSums, (other.Data, other.Offset), other.Correction)
    {
    }

    /// <summary>
    /// True when this CPU's quad kernel is AVX2's <c>vpmaddubsw</c>, whose pairs of products saturate; false with VNNI
    /// (<c>vpdpbusd</c>, VEX or EVEX) or ARM's dot product, which add exactly.
    /// </summary>
    internal static bool QuadKernelsSaturate => !(AvxVnni.IsSupported || Jit.Int8VnniKernels.IsSupported || Dp.IsSupported);

    /// <summary>Packs in a given format; <paramref name="saturatingQuads"/> says whether quads must avoid u8 x s8 pair saturation (tests force both).</summary>
    internal static PackedInt8Matrix Pack(ReadOnlySpan<byte> b, int depth, int columns, ReadOnlySpan<int> zeroPoints, bool transposed, bool signed,
        Int8PackFormat? format, bool? saturatingQuads = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(depth);
        ArgumentOutOfRangeException.ThrowIfNegative(columns);
        if (b.Length < (long)depth * columns) throw new ArgumentException($"B needs {(long)depth * columns} values, not {b.Length}.", nameof(b));
        if (zeroPoints.Length != 1 && zeroPoints.Length != columns)
            throw new ArgumentException($"B needs one zero point or {columns}, not {zeroPoints.Length}.", nameof(zeroPoints));

        // Column-major copy of B as int values: every format reads columns.
        var values = new int[(long)columns * depth];
        for (int n = 0; n < columns; n++)
        {
            for (int k = 0; k < depth; k++)
            {
                byte raw = transposed ? b[n * depth + k] : b[k * columns + n];
                values[(long)n * depth + k] = signed ? (sbyte)raw : raw;
            }
        }
        var given = zeroPoints.ToArray();

        bool saturates = saturatingQuads ?? QuadKernelsSaturate;
        if (format != Int8PackFormat.Pairs16)
        {
            var quads = QuadWeightLayout.Pack(values, depth, columns, signed, given, saturates);
            if (format == Int8PackFormat.Quads || quads.Correction is null || quads.Correction.Count <= MaxCorrectionFraction * depth * columns)
                return new PackedInt8Matrix(depth, columns, signed, Int8PackFormat.Quads, given, quads.ZeroPoints, quads.ColumnSums, quads.Data, quads.Correction)
                {
                    SaturationSafe = saturates,
                };
        }
        var pairs = PairWeightLayout.Pack(values, depth, columns, given);
        return new PackedInt8Matrix(depth, columns, signed, Int8PackFormat.Pairs16, given, pairs.ZeroPoints, pairs.ColumnSums, pairs.Data, null);
    }
}

/// <summary>Values of B kept out of the quad kernel, column by column (CSR): C gets <c>(A - zpA) x these</c> added.</summary>
internal sealed class SparseCorrection(int[] columnStarts, int[] rows, int[] values)
{
    /// <summary>Entry range of column n: <c>[ColumnStarts[n], ColumnStarts[n + 1])</c>.</summary>
    public int[] ColumnStarts { get; } = columnStarts;

    /// <summary>The K index of each entry.</summary>
    public int[] Rows { get; } = rows;

    /// <summary>The value of each entry.</summary>
    public int[] Values { get; } = values;

    public int Count => Values.Length;
}

/// <summary>The Pairs16 layout: per panel and pair of K, 32 bytes (columns 0..7 then 8..15, each column's two values adjacent).</summary>
internal static class PairWeightLayout
{
    public static (byte[] Data, int[] ZeroPoints, int[] ColumnSums) Pack(int[] values, int depth, int columns, int[] zeroPoints)
    {
        const int width = PackedInt8Matrix.PanelWidth;
        int panels = (columns + width - 1) / width;
        int pairs = (depth + 1) / 2;
        var data = new byte[(long)panels * pairs * 2 * width];
        var sums = new int[columns];
        var zps = new int[columns];
        for (int n = 0; n < columns; n++)
        {
            int panel = n / width, j = n % width;
            long column = (long)panel * pairs * 2 * width + (j / 8) * 16 + (j % 8) * 2;
            int sum = 0;
            for (int k = 0; k < depth; k++)
            {
                int v = values[(long)n * depth + k];
                data[column + (k / 2) * 2 * width + (k & 1)] = (byte)v;
                sum += v;
            }
            sums[n] = sum;
            zps[n] = zeroPoints.Length == 1 ? zeroPoints[0] : zeroPoints[n];
        }
        return (data, zps, sums);
    }
}

/// <summary>
/// The Quads layout: per panel and quad of K, 64 bytes: columns 0..7 then 8..15, each column's four values adjacent,
/// stored as int8 <c>B - shift</c>, where the shift is the column's zero point (stored zero point 0: no row sums of A
/// needed) unless that leaves more values outside -128..127 than the plain shift (0 for int8, 128 for uint8) does.
/// <para>
/// A value outside -128..127 keeps its clamped part and moves the rest into <see cref="SparseCorrection"/>. And with
/// saturation in mind, <c>vpmaddubsw</c> adds the products of adjacent pairs in 16 bits with saturation: with
/// A anywhere in 0..255, a pair (b0, b1) is safe when b0 and b1 differ in sign, or |b0 + b1| &lt;= 128. An unsafe pair
/// keeps the part of its values that is safe and moves the excess into the correction too. Bell-shaped weights need
/// very few; weights that fill their range need many (then 16-bit pairs, or 7-bit activations, are the way).
/// </para>
/// </summary>
internal static class QuadWeightLayout
{
    public static (byte[] Data, int[] ZeroPoints, int[] ColumnSums, SparseCorrection? Correction) Pack(
        int[] values, int depth, int columns, bool signed, int[] zeroPoints, bool saturates)
    {
        const int width = PackedInt8Matrix.PanelWidth;
        int panels = (columns + width - 1) / width;
        int quads = (depth + 3) / 4;
        var data = new byte[(long)panels * quads * 4 * width];
        var sums = new int[columns];
        var zps = new int[columns];
        var starts = new int[columns + 1];
        var rows = new List<int>();
        var excess = new List<int>();
        for (int n = 0; n < columns; n++)
        {
            int panel = n / width, j = n % width;
            long column = (long)panel * quads * 4 * width + (j / 8) * 32 + (j % 8) * 4;
            int zeroPoint = zeroPoints.Length == 1 ? zeroPoints[0] : zeroPoints[n];
            var columnValues = values.AsSpan((int)((long)n * depth), depth);
            int plain = signed ? 0 : 128;
            int shift = zeroPoint == plain || Corrections(columnValues, zeroPoint, saturates) <= Corrections(columnValues, plain, saturates) ? zeroPoint : plain;
            int sum = 0;
            for (int k = 0; k < depth; k += 2)
            {
                int b0 = columnValues[k] - shift;
                int b1 = k + 1 < depth ? columnValues[k + 1] - shift : 0;
                sum += b0 + b1;
                var (s0, s1) = Stored(b0, b1, saturates);
                if (b0 != s0) { rows.Add(k); excess.Add(b0 - s0); }
                if (b1 != s1) { rows.Add(k + 1); excess.Add(b1 - s1); }
                data[column + (k / 4) * 4 * width + (k & 3)] = (byte)(sbyte)s0;
                if (k + 1 < depth) data[column + (k / 4) * 4 * width + (k & 3) + 1] = (byte)(sbyte)s1;
            }
            sums[n] = sum;
            zps[n] = zeroPoint - shift;
            starts[n + 1] = rows.Count;
        }
        var correction = rows.Count == 0 ? null : new SparseCorrection(starts, rows.ToArray(), excess.ToArray());
        return (data, zps, sums, correction);
    }

    /// <summary>What a pair keeps in the kernel: each value clamped to int8, then (when saturating) the pair's sum kept at ±128.</summary>
    private static (int S0, int S1) Stored(int b0, int b1, bool saturates)
    {
        int s0 = Math.Clamp(b0, -128, 127), s1 = Math.Clamp(b1, -128, 127);
        if (saturates && Math.Sign(s0) * Math.Sign(s1) > 0 && Math.Abs(s0 + s1) > 128)
        {
            int sign = Math.Sign(s0);
            int over = Math.Abs(s0 + s1) - 128;
            int take0 = Math.Min(Math.Abs(s0), over);
            s0 -= sign * take0;
            s1 -= sign * (over - take0);
        }
        return (s0, s1);
    }

    private static int Corrections(ReadOnlySpan<int> column, int shift, bool saturates)
    {
        int count = 0;
        for (int k = 0; k < column.Length; k += 2)
        {
            int b0 = column[k] - shift, b1 = k + 1 < column.Length ? column[k + 1] - shift : 0;
            var (s0, s1) = Stored(b0, b1, saturates);
            count += (b0 != s0 ? 1 : 0) + (b1 != s1 ? 1 : 0);
        }
        return count;
    }
}

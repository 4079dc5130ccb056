using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Quantize.Kernels.Gemm;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// 2-D 3 x 3 convolutions with unit strides and dilations (one group) by Winograd's minimal filtering F(2 x 2, 3 x 3)
/// (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): each 2 x 2 block of outputs (a tile) comes
/// from a 4 x 4 block of input d through 16 products instead of 36.
/// <list type="bullet">
/// <item>Weights, once at load: <c>U = G g Gt</c> per output and input channel, computed in double.</item>
/// <item>Input, per tile and channel: <c>V = Bt d B</c> (additions only), written straight into the float GEMM's B panels.</item>
/// <item>The 16 positions of the 4 x 4 grid are 16 independent GEMMs on the float kernels:
/// <c>M[xi] = U[xi] (outputs x channels) x V[xi] (channels x tiles)</c>.</item>
/// <item>Output: <c>Y = At M A</c> gives the tile's four outputs, plus the bias and an optional Relu.</item>
/// </list>
/// Tiles go in blocks whose transformed input and products stay in L2; threads take whole blocks, and every output is
/// summed in the same order whatever the blocks are, so results do not depend on the thread count.
/// </summary>
internal sealed unsafe class WinogradConvolution
{
    /// <summary>The 4 x 4 grid of transformed positions.</summary>
    private const int Positions = 16;

    private const int PanelWidth = ConvolutionPanels.PanelWidth;

    /// <summary>
    /// Fewer tiles than this and the 16 GEMMs are too thin, streaming 16/9 of the weights for little work, to beat patches.
    /// ResNet18's 14 x 14 maps (49 tiles, 256 channels) still gain: 2.6 ms a layer with patches, 1.45 ms this way (one thread).
    /// </summary>
    internal const int MinimumTiles = 32;

    /// <summary>
    /// Tiles per block times the wider channel count, in floats, at one thread: the block's transformed input and its
    /// products (16 sets each) are about 512 KiB apiece. 4096 and 16384 measured within noise of it on ResNet18.
    /// </summary>
    private const int BlockBudget = 8192;

    /// <summary>The most channels either side for which the transformed weights are made at load (see <see cref="Fits"/>).</summary>
    internal const int MaximumChannels = 256;

    private readonly PackedFloatRows[] _weights;

    private WinogradConvolution(PackedFloatRows[] weights, int outputs, int channels)
    {
        _weights = weights;
        Outputs = outputs;
        Channels = channels;
    }

    public int Outputs { get; }

    public int Channels { get; }

    /// <summary>
    /// Whether a Conv with these attributes and weights can take this path: 3 x 3, 2-D, unit strides and dilations, and at
    /// most <see cref="MaximumChannels"/> channels either side. Wider layers run on small maps in image networks, where
    /// <see cref="Worth"/> would turn this path down anyway, so their 16/9-times-larger weights are not made.
    /// </summary>
    public static bool Fits(WindowAttributes window, ReadOnlySpan<int> weightShape) =>
        weightShape.Length == 4 && weightShape[2] == 3 && weightShape[3] == 3
        && weightShape[0] <= MaximumChannels && weightShape[1] <= MaximumChannels
        && (window.Strides is null || window.Strides.All(s => s == 1))
        && (window.Dilations is null || window.Dilations.All(d => d == 1));

    /// <summary>Whether a resolved window is one this path computes, on a map large enough to be faster than patches.</summary>
    public static bool Worth(WindowGeometry g) => Computes(g) && Tiles(g) >= MinimumTiles;

    internal static bool Computes(WindowGeometry g) =>
        g.Rank == 2 && g.Kernel[1] == 3 && g.Kernel[2] == 3 && g.Stride[1] == 1 && g.Stride[2] == 1 && g.Dilation[1] == 1 && g.Dilation[2] == 1;

    private static int Tiles(WindowGeometry g) => (g.Output[1] + 1) / 2 * ((g.Output[2] + 1) / 2);

    /// <summary>Transforms weights given as ONNX's <c>[outputs, channels, 3, 3]</c> and packs each position's matrix.</summary>
    public static WinogradConvolution Create(ReadOnlySpan<float> weights, int outputs, int channels)
    {
        var matrices = new float[Positions][];
        for (int p = 0; p < Positions; p++) matrices[p] = new float[outputs * channels];
        Span<double> u = stackalloc double[Positions];
        for (int m = 0; m < outputs; m++)
        {
            for (int c = 0; c < channels; c++)
            {
                TransformWeights(weights.Slice((m * channels + c) * 9, 9), u);
                for (int p = 0; p < Positions; p++) matrices[p][m * channels + c] = (float)u[p];
            }
        }
        var packed = matrices.Select(a => PackedFloatRows.Pack(a, outputs, channels)).ToArray();
        return new WinogradConvolution(packed, outputs, channels);
    }

    /// <summary><c>U = G g Gt</c> with <c>G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]</c>, row-major 4 x 4.</summary>
    internal static void TransformWeights(ReadOnlySpan<float> g, Span<double> u)
    {
        Span<double> gg = stackalloc double[12]; // G g: 4 x 3
        for (int s = 0; s < 3; s++)
        {
            double g0 = g[s], g1 = g[3 + s], g2 = g[6 + s];
            gg[s] = g0;
            gg[3 + s] = (g0 + g1 + g2) / 2;
            gg[6 + s] = (g0 - g1 + g2) / 2;
            gg[9 + s] = g2;
        }
        for (int i = 0; i < 4; i++)
        {
            double a = gg[i * 3], b = gg[i * 3 + 1], c = gg[i * 3 + 2];
            u[i * 4] = a;
            u[i * 4 + 1] = (a + b + c) / 2;
            u[i * 4 + 2] = (a - b + c) / 2;
            u[i * 4 + 3] = c;
        }
    }

    /// <summary>
    /// One image: <paramref name="image"/> is <c>[channels, H, W]</c>, <paramref name="output"/> <c>[outputs, OH, OW]</c>, and
    /// <paramref name="residual"/>, when not null, is added to it (the fused Add of a residual block), before Relu.
    /// <paramref name="vectors"/> picks the AVX2 transforms or their scalar twins (identical results).
    /// </summary>
    public void Run(WindowGeometry g, float* image, float* output, ReadOnlySpan<float> bias, float* residual, bool relu, int threads, bool vectors)
    {
        if (!Computes(g)) throw new ArgumentException("Winograd F(2x2, 3x3) computes 2-D 3 x 3 windows with unit strides and dilations.", nameof(g));
        vectors &= Avx2.IsSupported;
        int tiles = Tiles(g), tilesWide = (g.Output[2] + 1) / 2;
        int panels = (tiles + PanelWidth - 1) / PanelWidth;
        // Half-size blocks on several threads: more of them to share out (ResNet18 at two threads: medians 19.1-20.1 ms against
        // 19.9-20.9 in alternating runs; at one thread the larger blocks were 0.3-1.2 ms faster).
        int budget = threads > 1 ? BlockBudget / 2 : BlockBudget;
        int blockPanels = Math.Max(1, budget / Math.Max(Channels, Outputs) / PanelWidth);
        int blocks = (panels + blockPanels - 1) / blockPanels;
        var layout = new Layout(g, tilesWide);
        float[] biasValues = bias.IsEmpty ? [] : bias.ToArray();
        if (threads > 1 && panels < 4 * threads)
        {
            // Too few tiles to share out as blocks (a 14 x 14 map has 49): one block, each of its stages split over the threads.
            RunBlock(layout, image, output, residual, 0, tiles, biasValues, relu, vectors, threads);
            return;
        }
        if (threads > 1) blocks = (Math.Max(blocks, threads) + threads - 1) / threads * threads;
        blocks = Math.Min(blocks, panels);
        nint source = (nint)image, target = (nint)output, added = (nint)residual;
        void Block(int block)
        {
            var (first, count) = ConvolutionPanels.ChunkRange(tiles, blocks, block);
            if (count > 0) RunBlock(layout, (float*)source, (float*)target, (float*)added, first, count, biasValues, relu, vectors, 1);
        }
        if (threads > 1 && blocks > 1) IntraOpThreads.For(blocks, threads, Block);
        else for (int b = 0; b < blocks; b++) Block(b);
    }

    /// <summary>The image's sizes and pads, and the width of the tile grid.</summary>
    private readonly record struct Layout(int Height, int Width, int PadTop, int PadLeft, int OutputHeight, int OutputWidth, int TilesWide)
    {
        public Layout(WindowGeometry g, int tilesWide)
            : this(g.Input[1], g.Input[2], g.PadBegin[1], g.PadBegin[2], g.Output[1], g.Output[2], tilesWide)
        {
        }

        /// <summary>Floats per transformed line: two per tile, two more for the window's overhang, and slack for 8-tile vectors.</summary>
        public int LineLength => 2 * TilesWide + 24;
    }

    /// <summary>
    /// Tiles <c>[first, first + count)</c>: input transform, the 16 GEMMs, output transform. With several
    /// <paramref name="threads"/>, they split the channels of the input transform, the 16 GEMMs and the output channels
    /// of the output transform.
    /// </summary>
    private void RunBlock(in Layout layout, float* image, float* output, float* residual, int first, int count, float[] bias, bool relu, bool vectors, int threads)
    {
        int panels = (count + PanelWidth - 1) / PanelWidth;
        // One cache line more than the data per position: 16 streams a power of two apart would share L1 sets. The
        // products' rows are whole cache lines too (row stride a multiple of 16), so the GEMM's 64-byte stores never
        // straddle two lines, wherever the rented array lands.
        int productRow = panels * PanelWidth;
        long transformedStride = (long)panels * PanelWidth * Channels + PanelWidth, productStride = (long)Outputs * productRow + PanelWidth;
        int lineLength = layout.LineLength;
        float[] transformed = ArrayPool<float>.Shared.Rent((int)(Positions * transformedStride) + 16);
        float[] products = ArrayPool<float>.Shared.Rent((int)(Positions * productStride) + 16);
        try
        {
            fixed (float* start = transformed, productsStart = products)
            {
                // The panels on a cache line, as PackedFloatMatrix keeps them; the products likewise.
                float* v = start + CacheLineStorage.LineOffset(start);
                float* m = productsStart + CacheLineStorage.LineOffset(productsStart);
                var shape = layout;
                nint from = (nint)image, to = (nint)output, added = (nint)residual, transformedAt = (nint)v, productsAt = (nint)m;
                Split(Channels, threads, (c0, c1) =>
                {
                    float[] lines = ArrayPool<float>.Shared.Rent(4 * lineLength);
                    fixed (float* line = lines)
                        TransformInput(shape, (float*)from, first, count, (float*)transformedAt, transformedStride, line, vectors, c0, c1);
                    ArrayPool<float>.Shared.Return(lines);
                });
                // Threads take whole positions' GEMMs: one fork for the sixteen rather than one each.
                Split(Positions, threads, (p0, p1) =>
                {
                    for (int p = p0; p < p1; p++)
                    {
                        FloatGemm.Multiply(_weights[p], (float*)transformedAt + p * transformedStride, Channels, count,
                            new Span<float>((float*)productsAt + p * productStride, (int)productStride), productRow);
                    }
                });
                Split(Outputs, threads, (m0, m1) => TransformOutput(shape, (float*)productsAt, productStride, productRow, first, count, (float*)to, (float*)added, bias, relu, vectors, m0, m1));
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(transformed);
            ArrayPool<float>.Shared.Return(products);
        }
    }

    /// <summary><c>[0, count)</c> in <paramref name="threads"/> even ranges, run in parallel (or whole on this thread).</summary>
    private static void Split(int count, int threads, Action<int, int> body)
    {
        if (threads <= 1 || count < 2)
        {
            body(0, count);
            return;
        }
        int parts = Math.Min(threads, count);
        IntraOpThreads.For(parts, parts, part => body((int)((long)count * part / parts), (int)((long)count * (part + 1) / parts)));
    }

    /// <summary>
    /// <c>V = Bt d B</c> for every channel and tile of the block, into 16 sets of B panels (channels deep, a tile per
    /// column). Per channel and run of tiles along a tile row: <c>Bt</c> down the four input rows (whole lines, the
    /// padding as zeros), then <c>B</c> across each tile's four columns.
    /// </summary>
    private void TransformInput(in Layout layout, float* image, int first, int count, float* v, long stride, float* lines, bool vectors, int channelStart, int channelEnd)
    {
        int lineLength = layout.LineLength, panelStride = Channels * PanelWidth;
        long plane = (long)layout.Height * layout.Width;
        int last = first + count - 1;
        // The last panel's columns past the block: zeros, as the packers leave them.
        int tail = count % PanelWidth;
        if (tail != 0)
        {
            float* lastPanel = v + (long)(count / PanelWidth) * panelStride;
            for (int p = 0; p < Positions; p++)
                for (int c = channelStart; c < channelEnd; c++)
                    new Span<float>(lastPanel + p * stride + c * PanelWidth + tail, PanelWidth - tail).Clear();
        }
        for (int c = channelStart; c < channelEnd; c++)
        {
            float* source = image + c * plane;
            float* row = v + c * PanelWidth;
            // Whole-vector stores may spill onto the next channel's row: not past this range's (another thread's, or another panel).
            bool lastChannel = c == channelEnd - 1;
            for (int t = first; t <= last;)
            {
                int tileRow = t / layout.TilesWide, tileColumn = t % layout.TilesWide;
                int tilesInRow = Math.Min(layout.TilesWide - tileColumn, last + 1 - t);
                RowTransform(layout, source, 2 * tileRow - layout.PadTop, 2 * tileColumn - layout.PadLeft, 2 * tilesInRow + 16, lines);
                if (vectors) ColumnTransformAvx2(lines, lineLength, tilesInRow, row, stride, panelStride, t - first, lastChannel);
                else ColumnTransformScalar(lines, lineLength, tilesInRow, row, stride, panelStride, t - first);
                t += tilesInRow;
            }
        }
    }

    /// <summary>
    /// <c>Bt</c> down input rows <c>y .. y + 3</c> from column <paramref name="x"/> on, <paramref name="length"/> columns,
    /// zeros outside the image: lines <c>(d0 - d2, d1 + d2, d2 - d1, d1 - d3)</c>. Elementwise, so vectors give the scalar bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RowTransform(in Layout layout, float* plane, int y, int x, int length, float* lines)
    {
        int width = layout.Width, lineLength = layout.LineLength;
        float* r0 = Row(layout, plane, y), r1 = Row(layout, plane, y + 1), r2 = Row(layout, plane, y + 2), r3 = Row(layout, plane, y + 3);
        float* l0 = lines, l1 = lines + lineLength, l2 = lines + 2 * lineLength, l3 = lines + 3 * lineLength;
        // Columns j in [inside, end) are in the image for every row; the rest read zeros.
        int inside = Math.Clamp(-x, 0, length), end = Math.Clamp(width - x, inside, length);
        int j = 0;
        for (; j < inside; j++) Column(r0, r1, r2, r3, x + j, width, l0 + j, l1 + j, l2 + j, l3 + j);
        var zero = Vector256<float>.Zero;
        for (; j + 8 <= end; j += 8)
        {
            int at = x + j;
            var d0 = r0 is null ? zero : Vector256.Load(r0 + at);
            var d1 = r1 is null ? zero : Vector256.Load(r1 + at);
            var d2 = r2 is null ? zero : Vector256.Load(r2 + at);
            var d3 = r3 is null ? zero : Vector256.Load(r3 + at);
            Vector256.Store(d0 - d2, l0 + j);
            Vector256.Store(d1 + d2, l1 + j);
            Vector256.Store(d2 - d1, l2 + j);
            Vector256.Store(d1 - d3, l3 + j);
        }
        for (; j < end; j++) Column(r0, r1, r2, r3, x + j, width, l0 + j, l1 + j, l2 + j, l3 + j);
        // Past the image's right edge every line is zero.
        for (; j < length; j += 8)
        {
            Vector256.Store(zero, l0 + j);
            Vector256.Store(zero, l1 + j);
            Vector256.Store(zero, l2 + j);
            Vector256.Store(zero, l3 + j);
        }
    }

    /// <summary>Input row <paramref name="y"/>, or null in the padding.</summary>
    private static float* Row(in Layout layout, float* plane, int y) => (uint)y < (uint)layout.Height ? plane + (long)y * layout.Width : null;

    private static void Column(float* r0, float* r1, float* r2, float* r3, int x, int width, float* l0, float* l1, float* l2, float* l3)
    {
        bool inside = (uint)x < (uint)width;
        float d0 = inside && r0 is not null ? r0[x] : 0f, d1 = inside && r1 is not null ? r1[x] : 0f;
        float d2 = inside && r2 is not null ? r2[x] : 0f, d3 = inside && r3 is not null ? r3[x] : 0f;
        *l0 = d0 - d2;
        *l1 = d1 + d2;
        *l2 = d2 - d1;
        *l3 = d1 - d3;
    }

    /// <summary>
    /// <c>B</c> across each tile's four columns of the four row-transformed lines: line i, tile k gives positions
    /// 4i .. 4i + 3 as <c>(e0 - e2, e1 + e2, e2 - e1, e1 - e3)</c> with <c>e = line[2k .. 2k + 3]</c>, stored at
    /// channel row <paramref name="row"/> of the block's panels from block tile <paramref name="local"/> on. The scalar twin.
    /// </summary>
    internal static void ColumnTransformScalar(float* lines, int lineLength, int tiles, float* row, long stride, int panelStride, int local)
    {
        for (int i = 0; i < 4; i++)
        {
            float* line = lines + i * lineLength;
            for (int k = 0; k < tiles; k++)
            {
                float e0 = line[2 * k], e1 = line[2 * k + 1], e2 = line[2 * k + 2], e3 = line[2 * k + 3];
                int tile = local + k;
                float* at = row + (long)(tile / PanelWidth) * panelStride + tile % PanelWidth;
                at[(4 * i) * stride] = e0 - e2;
                at[(4 * i + 1) * stride] = e1 + e2;
                at[(4 * i + 2) * stride] = e2 - e1;
                at[(4 * i + 3) * stride] = e1 - e3;
            }
        }
    }

    /// <summary>
    /// <see cref="ColumnTransformScalar"/> up to eight tiles at a time (even and odd columns deinterleaved, then shifted by
    /// one), never across a panel boundary. A run shorter than eight is stored whole: its extra lanes land on the next
    /// channel's row of the panel (written later, channels go in order) or on tiles of this row still to come, except
    /// for the last channel of the caller's range, whose next row is another thread's or another panel's.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void ColumnTransformAvx2(float* lines, int lineLength, int tiles, float* row, long stride, int panelStride, int local, bool lastChannel)
    {
        for (int k = 0; k < tiles;)
        {
            int tile = local + k, offset = tile % PanelWidth;
            int lanes = Math.Min(Math.Min(8, tiles - k), PanelWidth - offset);
            float* at = row + (long)(tile / PanelWidth) * panelStride + offset;
            bool whole = lanes == 8 || !lastChannel || offset + 8 <= PanelWidth;
            for (int i = 0; i < 4; i++)
            {
                float* line = lines + i * lineLength + 2 * k;
                var (even, odd) = Deinterleave(Vector256.Load(line), Vector256.Load(line + 8));
                var (nextEven, nextOdd) = Deinterleave(Vector256.Load(line + 2), Vector256.Load(line + 10));
                float* position = at + 4 * i * stride;
                if (whole)
                {
                    Vector256.Store(even - nextEven, position);
                    Vector256.Store(odd + nextEven, position + stride);
                    Vector256.Store(nextEven - odd, position + 2 * stride);
                    Vector256.Store(odd - nextOdd, position + 3 * stride);
                }
                else
                {
                    StoreLanes(even - nextEven, position, lanes);
                    StoreLanes(odd + nextEven, position + stride, lanes);
                    StoreLanes(nextEven - odd, position + 2 * stride, lanes);
                    StoreLanes(odd - nextOdd, position + 3 * stride, lanes);
                }
            }
            k += lanes;
        }
    }

    private static void StoreLanes(Vector256<float> value, float* target, int lanes)
    {
        for (int j = 0; j < lanes; j++) target[j] = value.GetElement(j);
    }

    /// <summary>Lanes 0, 2, .., 14 and 1, 3, .., 15 of sixteen floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<float> Even, Vector256<float> Odd) Deinterleave(Vector256<float> low, Vector256<float> high)
    {
        // The shuffles pick within 128-bit halves; the permute puts the halves' pairs in order.
        var even = Avx2.Permute4x64(Avx.Shuffle(low, high, 0b10_00_10_00).AsDouble(), 0b11_01_10_00).AsSingle();
        var odd = Avx2.Permute4x64(Avx.Shuffle(low, high, 0b11_01_11_01).AsDouble(), 0b11_01_10_00).AsSingle();
        return (even, odd);
    }

    /// <summary>
    /// <c>Y = At M A</c> per output channel and tile, plus the bias, plus the residual if given (same layout as the
    /// output), then Relu if asked, into the NCHW output: the operations, in order, of the Conv, Add and Relu nodes. With
    /// <c>s_j = M0j + M1j + M2j</c> and <c>d_j = M1j - M2j - M3j</c>: <c>y00 = s0 + s1 + s2</c>, <c>y01 = s1 - s2 - s3</c>,
    /// <c>y10 = d0 + d1 + d2</c>, <c>y11 = d1 - d2 - d3</c>. Vectors take eight tiles of a row at a time (the last
    /// group writing only its columns); the scalar twin has the same order of operations.
    /// </summary>
    private void TransformOutput(in Layout layout, float* products, long stride, int productRow, int first, int count, float* output, float* residual, float[] bias, bool relu,
        bool vectors, int outputStart, int outputEnd)
    {
        int outH = layout.OutputHeight, outW = layout.OutputWidth, last = first + count - 1;
        long plane = (long)outH * outW;
        for (int m = outputStart; m < outputEnd; m++)
        {
            float b = bias.Length == 0 ? 0f : bias[m];
            float* rows = products + (long)m * productRow;
            for (int t = first; t <= last;)
            {
                int tileRow = t / layout.TilesWide, tileColumn = t % layout.TilesWide;
                int tilesInRow = Math.Min(layout.TilesWide - tileColumn, last + 1 - t);
                int y = 2 * tileRow;
                long at = m * plane + (long)y * outW;
                var top = new OutputRow(output + at, residual is null ? null : residual + at);
                var bottom = y + 1 < outH ? new OutputRow(top.Target + outW, residual is null ? null : top.Residual + outW) : default;
                int k = 0;
                if (vectors)
                {
                    // Eight tiles at a time; a last short group reads products past the run (rows have slack) and writes only its own columns.
                    for (; k < tilesInRow; k += 8)
                    {
                        int x = 2 * (tileColumn + k);
                        OutputTilesAvx2(rows + (t - first) + k, stride, b, relu, top.At(x), bottom.At(x), Math.Min(16, Math.Min(outW - x, 2 * (tilesInRow - k))));
                    }
                }
                for (; k < tilesInRow; k++)
                    OutputTileScalar(rows + (t - first) + k, stride, b, relu, top, bottom, 2 * (tileColumn + k), outW);
                t += tilesInRow;
            }
        }
    }

    /// <summary>Where a row of outputs goes and its residual (null without one); a null target past the map's last row.</summary>
    internal readonly struct OutputRow(float* target, float* residual)
    {
        public float* Target { get; } = target;

        public float* Residual { get; } = residual;

        public OutputRow At(int x) => Target is null ? default : new(Target + x, Residual is null ? null : Residual + x);
    }

    /// <summary>One tile's outputs from its 16 products (<paramref name="stride"/> apart), at columns <c>x, x + 1</c> of the two rows.</summary>
    internal static void OutputTileScalar(float* products, long stride, float bias, bool relu, OutputRow top, OutputRow bottom, int x, int width)
    {
        Span<float> s = stackalloc float[4], d = stackalloc float[4];
        for (int j = 0; j < 4; j++)
        {
            s[j] = products[j * stride] + products[(4 + j) * stride] + products[(8 + j) * stride];
            d[j] = products[(4 + j) * stride] - products[(8 + j) * stride] - products[(12 + j) * stride];
        }
        Finish(top, x, s[0] + s[1] + s[2], bias, relu);
        if (x + 1 < width) Finish(top, x + 1, s[1] - s[2] - s[3], bias, relu);
        if (bottom.Target is null) return;
        Finish(bottom, x, d[0] + d[1] + d[2], bias, relu);
        if (x + 1 < width) Finish(bottom, x + 1, d[1] - d[2] - d[3], bias, relu);
    }

    private static void Finish(OutputRow row, int x, float value, float bias, bool relu)
    {
        float y = value + bias;
        if (row.Residual is not null) y += row.Residual[x];
        row.Target[x] = relu ? MathF.Max(y, 0f) : y;
    }

    /// <summary><see cref="OutputTileScalar"/> for eight tiles of one row, their outputs interleaved into the first <paramref name="columns"/> of sixteen columns.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void OutputTilesAvx2(float* products, long stride, float bias, bool relu, OutputRow top, OutputRow bottom, int columns)
    {
        var b = Vector256.Create(bias);
        var s0 = Vector256.Load(products) + Vector256.Load(products + 4 * stride) + Vector256.Load(products + 8 * stride);
        var s1 = Vector256.Load(products + stride) + Vector256.Load(products + 5 * stride) + Vector256.Load(products + 9 * stride);
        var s2 = Vector256.Load(products + 2 * stride) + Vector256.Load(products + 6 * stride) + Vector256.Load(products + 10 * stride);
        var s3 = Vector256.Load(products + 3 * stride) + Vector256.Load(products + 7 * stride) + Vector256.Load(products + 11 * stride);
        StorePairs(s0 + s1 + s2 + b, s1 - s2 - s3 + b, relu, top, columns);
        if (bottom.Target is null) return;
        var d0 = Vector256.Load(products + 4 * stride) - Vector256.Load(products + 8 * stride) - Vector256.Load(products + 12 * stride);
        var d1 = Vector256.Load(products + 5 * stride) - Vector256.Load(products + 9 * stride) - Vector256.Load(products + 13 * stride);
        var d2 = Vector256.Load(products + 6 * stride) - Vector256.Load(products + 10 * stride) - Vector256.Load(products + 14 * stride);
        var d3 = Vector256.Load(products + 7 * stride) - Vector256.Load(products + 11 * stride) - Vector256.Load(products + 15 * stride);
        StorePairs(d0 + d1 + d2 + b, d1 - d2 - d3 + b, relu, bottom, columns);
    }

    /// <summary>Left and right outputs of eight tiles as sixteen consecutive floats (the first <paramref name="columns"/> of them), plus the residual, then Relu.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StorePairs(Vector256<float> left, Vector256<float> right, bool relu, OutputRow row, int columns)
    {
        var low = Avx.UnpackLow(left, right);   // l0 r0 l1 r1 | l4 r4 l5 r5
        var high = Avx.UnpackHigh(left, right); // l2 r2 l3 r3 | l6 r6 l7 r7
        var first = Avx.Permute2x128(low, high, 0x20);
        var second = Avx.Permute2x128(low, high, 0x31);
        float* pairs = stackalloc float[16];
        if (row.Residual is not null)
        {
            float* residual = row.Residual;
            if (columns < 16)
            {
                // Only the columns that exist: the residual may end right after them.
                new Span<float>(pairs, 16).Clear();
                new ReadOnlySpan<float>(residual, columns).CopyTo(new Span<float>(pairs, 16));
                residual = pairs;
            }
            first += Vector256.Load(residual);
            second += Vector256.Load(residual + 8);
        }
        if (relu)
        {
            first = Vector256.Max(first, Vector256<float>.Zero);
            second = Vector256.Max(second, Vector256<float>.Zero);
        }
        if (columns == 16)
        {
            Vector256.Store(first, row.Target);
            Vector256.Store(second, row.Target + 8);
            return;
        }
        Vector256.Store(first, pairs);
        Vector256.Store(second, pairs + 8);
        for (int j = 0; j < columns; j++) row.Target[j] = pairs[j];
    }
}

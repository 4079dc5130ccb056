using Google.Protobuf;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Models.TensorFlow;
using Quantize.Tests;

namespace Quantize.Kernels.Tests.Models;

/// <summary>
/// Corrupt models must be refused with <see cref="InvalidModelException"/> (or load and then work),
/// quickly and without allocating memory the file cannot justify. Mutations of small real models
/// with a fixed seed, so every failure names a reproducible seed and index.
/// </summary>
public class ModelFuzzTests
{
    /// <summary>1,000 per model; set QUANTIZE_FUZZ_MUTANTS to run longer, QUANTIZE_FUZZ_SEED to add to every seed.</summary>
    private static readonly int MutantsPerModel = EnvironmentNumber("QUANTIZE_FUZZ_MUTANTS") ?? 1000;

    private static readonly int SeedOffset = EnvironmentNumber("QUANTIZE_FUZZ_SEED") ?? 0;

    private static int? EnvironmentNumber(string name) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), out int value) ? value : null;

    public static TheoryData<string, int> Models() => new()
    {
        { "tf-graphs/nnstreamer_mnist.pb", 1001 },
        { "tf-graphs/kws_ds_cnn_s.pb", 1002 },
        { "onnx-node-tests/test_if/model.onnx", 1003 },
        { "onnx-node-tests/test_loop11/model.onnx", 1004 },
        { "onnx-node-tests-extra/pytorch-converted/test_Conv2d/model.onnx", 1005 },
    };

    [Theory]
    [MemberData(nameof(Models))]
    public async Task Every_mutant_loads_and_works_or_is_refused_with_InvalidModelException(string relative, int seed)
    {
        byte[] original = File.ReadAllBytes(SharedData.Require(relative));
        string name = Path.GetFileName(relative);
        // The unmutated model must load: it also warms up the code paths before anything is timed.
        var baseline = Exercise(original, name);
        Assert.True(baseline.Error is null && baseline.Loaded, $"{relative} itself does not load: {baseline.Error}");

        seed += SeedOffset;
        var random = new Random(seed);
        var wire = WireMap.Of(original);
        long allocationLimit = 64L * original.Length + (16 << 20);
        var failures = new List<string>();
        int loaded = 0, refused = 0;
        long largestAllocation = 0;
        for (int index = 0; index < MutantsPerModel && failures.Count < 20; index++)
        {
            var (mutant, mutation) = Mutator.Mutate(original, wire, random);
            string where = $"{relative} seed {seed} mutant {index} ({mutation})";
            // On its own thread, so a hang is caught (the hang guard is the one timing check here).
            var run = Task.Factory.StartNew(() => Exercise(mutant, name), TestContext.Current.CancellationToken,
                TaskCreationOptions.LongRunning, TaskScheduler.Default);
            Result result;
            try
            {
                result = await run.WaitAsync(TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken);
            }
            catch (TimeoutException)
            {
                failures.Add($"{where}: still running after 1 s");
                break; // the hung thread cannot be stopped; later timings would be meaningless
            }
            largestAllocation = Math.Max(largestAllocation, result.AllocatedBytes);
            if (result.Error is not null)
                failures.Add($"{where}: {result.Error}");
            else if (result.AllocatedBytes > allocationLimit)
                failures.Add($"{where}: allocated {result.AllocatedBytes:N0} bytes for a {mutant.Length:N0}-byte file (limit {allocationLimit:N0})");
            else if (result.Loaded)
                loaded++;
            else
                refused++;
        }

        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{relative}: {loaded} mutants loaded, {refused} refused with InvalidModelException, largest allocation {largestAllocation:N0} bytes");
        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
        Assert.Equal(MutantsPerModel, loaded + refused);
    }

    [Fact]
    public void A_real_graph_whose_broadcast_constant_claims_a_huge_shape_is_refused_before_allocating()
    {
        // kws_ds_cnn_s.pb's batch_norm/Const tensors store one float_val for shape [64]; a corrupt
        // dimension (the mutation random inflation rarely lands on) must not cost 256 MiB.
        var graph = GraphDef.Parser.ParseFrom(File.ReadAllBytes(SharedData.Require("tf-graphs/kws_ds_cnn_s.pb")));
        var tensor = graph.Node.Select(GraphDefModel.ConstValue).First(t => t is { FloatVal.Count: 1, TensorShape.Dim: [{ Size: 64 }] })!;
        tensor.TensorShape.Dim[0].Size = 1 << 26;
        byte[] mutant = graph.ToByteArray();

        var result = Exercise(mutant, "kws_ds_cnn_s.pb");

        Assert.Null(result.Error);
        Assert.False(result.Loaded);
        Assert.True(result.AllocatedBytes < 64L * mutant.Length + (16 << 20), $"allocated {result.AllocatedBytes:N0} bytes");
    }

    private sealed record Result(bool Loaded, string? Error, long AllocatedBytes);

    /// <summary>Loads the bytes and, if they load, reads everything a user would: tensor descriptions, every stored tensor, the serialized form.</summary>
    private static Result Exercise(byte[] bytes, string name)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        bool loaded = false;
        string? error = null;
        try
        {
            var model = Model.Load(bytes, name);
            foreach (var info in model.DescribeStoredTensors()) _ = info.ByteCount;
            switch (model)
            {
                case OnnxModel onnx:
                    foreach (var slot in TensorSlot.Enumerate(onnx.Proto)) onnx.ReadTensor(slot.Tensor);
                    break;
                case GraphDefModel graph:
                    foreach (var node in graph.Proto.Node)
                    {
                        if (GraphDefModel.ConstValue(node) is { } tensor) graph.ReadTensor(tensor, node.Name);
                    }
                    break;
            }
            model.ToByteArray();
            loaded = true;
        }
        catch (InvalidModelException)
        {
        }
        catch (Exception e)
        {
            error = e.ToString();
        }
        return new Result(loaded, error, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    /// <summary>Where a protobuf message (and the messages nested in it) keeps its varints: field values and length prefixes.</summary>
    private sealed class WireMap
    {
        public List<(int Offset, int Size, ulong Value)> Lengths { get; } = [];
        public List<(int Offset, int Size, ulong Value)> Values { get; } = [];

        public static WireMap Of(byte[] message)
        {
            var map = new WireMap();
            map.Walk(message, 0, message.Length, depth: 0);
            return map;
        }

        /// <summary>Records the fields of [start, end) if it parses as a message; returns false (recording nothing) otherwise.</summary>
        private bool Walk(byte[] data, int start, int end, int depth)
        {
            if (depth > 32 || !Parses(data, start, end)) return false;
            int position = start;
            while (position < end)
            {
                ReadVarint(data, ref position, out ulong tag);
                int offset = position;
                switch ((int)(tag & 7))
                {
                    case 0:
                        ReadVarint(data, ref position, out ulong value);
                        Values.Add((offset, position - offset, value));
                        break;
                    case 1: position += 8; break;
                    case 5: position += 4; break;
                    case 2:
                        ReadVarint(data, ref position, out ulong length);
                        Lengths.Add((offset, position - offset, length));
                        Walk(data, position, position + (int)length, depth + 1);
                        position += (int)length;
                        break;
                }
            }
            return true;
        }

        private static bool Parses(byte[] data, int start, int end)
        {
            int position = start;
            while (position < end)
            {
                if (!ReadVarint(data, ref position, out ulong tag) || tag >> 3 == 0 || position > end) return false;
                switch ((int)(tag & 7))
                {
                    case 0:
                        if (!ReadVarint(data, ref position, out _)) return false;
                        break;
                    case 1: position += 8; break;
                    case 5: position += 4; break;
                    case 2:
                        if (!ReadVarint(data, ref position, out ulong length) || length > (ulong)(end - position)) return false;
                        position += (int)length;
                        break;
                    default: return false;
                }
                if (position > end) return false;
            }
            return true;
        }

        private static bool ReadVarint(byte[] data, ref int position, out ulong value)
        {
            value = 0;
            for (int shift = 0; shift < 64 && position < data.Length; shift += 7)
            {
                byte b = data[position++];
                value |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80) return true;
            }
            return false;
        }
    }

    private static class Mutator
    {
        public static (byte[] Bytes, string Description) Mutate(byte[] original, WireMap wire, Random random)
        {
            var bytes = original.ToList();
            switch (random.Next(7))
            {
                case 0:
                {
                    int flips = random.Next(1, 5);
                    for (int i = 0; i < flips; i++) bytes[random.Next(bytes.Count)] ^= (byte)(1 << random.Next(8));
                    return (bytes.ToArray(), $"{flips} bit flips");
                }
                case 1:
                {
                    int writes = random.Next(1, 9);
                    for (int i = 0; i < writes; i++) bytes[random.Next(bytes.Count)] = (byte)random.Next(256);
                    return (bytes.ToArray(), $"{writes} random bytes");
                }
                case 2:
                {
                    int length = random.Next(original.Length);
                    return (original[..length], $"truncated to {length} bytes");
                }
                case 3:
                {
                    int at = random.Next(bytes.Count + 1), count = random.Next(1, 17);
                    var inserted = new byte[count];
                    random.NextBytes(inserted);
                    bytes.InsertRange(at, inserted);
                    return (bytes.ToArray(), $"{count} bytes inserted at {at}");
                }
                case 4:
                {
                    int at = random.Next(bytes.Count), count = Math.Min(random.Next(1, 17), bytes.Count - at);
                    bytes.RemoveRange(at, count);
                    return (bytes.ToArray(), $"{count} bytes deleted at {at}");
                }
                case 5:
                {
                    var (offset, size, value) = wire.Lengths[random.Next(wire.Lengths.Count)];
                    ulong inflated = Inflate(value, random);
                    return (Replace(original, offset, size, inflated), $"length {value} at {offset} inflated to {inflated}");
                }
                default:
                {
                    var (offset, size, value) = wire.Values[random.Next(wire.Values.Count)];
                    ulong inflated = Inflate(value, random);
                    return (Replace(original, offset, size, inflated), $"varint {value} at {offset} inflated to {inflated}");
                }
            }
        }

        private static ulong Inflate(ulong value, Random random) => random.Next(7) switch
        {
            0 => value + (ulong)random.Next(1, 17),
            1 => value * 2 + 1,
            2 => int.MaxValue,
            3 => uint.MaxValue,
            4 => 1UL << random.Next(20, 63),
            5 => ulong.MaxValue, // -1 as an int64
            _ => (ulong)random.NextInt64(),
        };

        private static byte[] Replace(byte[] original, int offset, int size, ulong value)
        {
            Span<byte> varint = stackalloc byte[10];
            int length = 0;
            do
            {
                byte b = (byte)(value & 0x7F);
                value >>= 7;
                varint[length++] = value != 0 ? (byte)(b | 0x80) : b;
            }
            while (value != 0);
            return [.. original.AsSpan(0, offset), .. varint[..length], .. original.AsSpan(offset + size)];
        }
    }
}

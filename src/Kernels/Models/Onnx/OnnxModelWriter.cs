using System.Globalization;
using Google.Protobuf;
using Quantize.Kernels.IO;

namespace Quantize.Kernels.Models.Onnx;

/// <summary>
/// Writes ONNX models inline or with external data. Tensors that move (inline to external, or
/// external back inline) are swapped for rewritten copies only while the message is written, so
/// the caller's model is unchanged afterwards and nothing large is copied twice.
/// </summary>
internal static class OnnxModelWriter
{
    public static void Save(OnnxModel model, string path, OnnxSaveOptions options)
    {
        string fullPath = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(fullPath)!;
        string location = options.Location ?? Path.GetFileName(fullPath) + OnnxSaveOptions.DefaultLocationSuffix;

        var slots = TensorSlot.Enumerate(model.Proto).ToList();
        var infos = slots.Select(s => OnnxTensorCodec.Describe(s.Tensor, model, s.Name)).ToList();
        bool externalize = options.ExternalData switch
        {
            ExternalDataMode.Always => true,
            ExternalDataMode.Never => false,
            _ => EstimateInlineBytes(slots, infos) > options.InlineLimit,
        };

        string? dataPath = null;
        if (externalize)
        {
            Directory.CreateDirectory(folder);
            dataPath = ContainedPath.Resolve(folder, location, fullPath, "the save location");
            foreach (var (slot, info) in slots.Zip(infos))
            {
                if (info.IsExternal && SameFile(ExternalDataReference.Resolve(slot.Tensor, model.BaseDirectory, model.Source).FullPath, dataPath))
                    throw new IOException($"Saving to '{path}' would overwrite '{location}', which the model still reads its own weights from. Save to another folder or name.");
            }
        }

        var swaps = new List<(TensorSlot Slot, TensorProto Original)>();
        AtomicFile? data = null;
        try
        {
            for (int i = 0; i < slots.Count; i++)
            {
                var slot = slots[i];
                var info = infos[i];
                bool toExternal = externalize && info.ElementType != TensorElementType.String && info.ByteCount >= options.SizeThreshold
                    && (slot.IsInitializer || options.ExternalData == ExternalDataMode.Auto);
                if (toExternal)
                {
                    data ??= AtomicFile.Create(dataPath!);
                    var replacement = WithoutData(slot.Tensor);
                    long offset = AppendData(data.Stream, slot.Tensor, info, model, options);
                    replacement.DataLocation = TensorProto.Types.DataLocation.External;
                    AddEntry(replacement, "location", location);
                    AddEntry(replacement, "offset", offset.ToString(CultureInfo.InvariantCulture));
                    AddEntry(replacement, "length", info.ByteCount.ToString(CultureInfo.InvariantCulture));
                    Swap(slot, replacement, swaps);
                }
                else if (info.IsExternal)
                {
                    Swap(slot, Inlined(slot.Tensor, info, model), swaps);
                }
            }

            CheckMessageSize(model.Proto, slots, path);
            using var modelFile = AtomicFile.Create(fullPath);
            model.Proto.WriteTo(modelFile.Stream);
            if (data is null)
                modelFile.Commit();
            else
                CommitPair(data, modelFile);
        }
        finally
        {
            for (int i = swaps.Count - 1; i >= 0; i--) swaps[i].Slot.Tensor = swaps[i].Original;
            data?.Dispose();
        }
    }

    /// <summary>
    /// Renames the data file and then the model into place. Should the model's rename fail, the data
    /// file is put back as it was (the previous one restored, or the new one removed), so a failed
    /// save never leaves a data file that no model, or the wrong model, refers to.
    /// </summary>
    private static void CommitPair(AtomicFile data, AtomicFile modelFile)
    {
        string? previous = File.Exists(data.Path) ? data.TemporaryPath + ".previous" : null;
        if (previous is not null) File.Move(data.Path, previous);
        try
        {
            data.Commit();
        }
        catch
        {
            if (previous is not null) File.Move(previous, data.Path);
            throw;
        }
        try
        {
            modelFile.Commit();
        }
        catch
        {
            if (previous is not null) File.Move(previous, data.Path, overwrite: true);
            else File.Delete(data.Path);
            throw;
        }
        if (previous is not null) File.Delete(previous);
    }

    /// <summary>Writes the whole model as one message, bringing any external data inline.</summary>
    public static void WriteInline(OnnxModel model, Stream destination)
    {
        var swaps = new List<(TensorSlot Slot, TensorProto Original)>();
        try
        {
            var slots = TensorSlot.Enumerate(model.Proto).ToList();
            foreach (var slot in slots)
            {
                if (!ExternalDataReference.IsExternal(slot.Tensor)) continue;
                var info = OnnxTensorCodec.Describe(slot.Tensor, model, slot.Name);
                Swap(slot, Inlined(slot.Tensor, info, model), swaps);
            }
            CheckMessageSize(model.Proto, slots, model.Source);
            model.Proto.WriteTo(destination);
        }
        finally
        {
            for (int i = swaps.Count - 1; i >= 0; i--) swaps[i].Slot.Tensor = swaps[i].Original;
        }
    }

    private static long EstimateInlineBytes(List<TensorSlot> slots, List<StoredTensorInfo> infos)
    {
        long total = 0;
        for (int i = 0; i < slots.Count; i++)
            total += infos[i].IsExternal ? infos[i].ByteCount + 64 : slots[i].Tensor.CalculateSize();
        return total;
    }

    private static void CheckMessageSize(ModelProto proto, IEnumerable<TensorSlot> slots, string target)
    {
        // CalculateSize is an int and wraps past 2 GiB: add up the tensors (the bulk) in 64 bits first.
        long tensorBytes = 0;
        foreach (var slot in slots) tensorBytes += slot.Tensor.CalculateSize();
        if (tensorBytes >= int.MaxValue - (1L << 20) || proto.CalculateSize() < 0)
            throw new InvalidOperationException($"'{target}' would be larger than protobuf's 2 GiB limit for one message. Save it with external data (ExternalDataMode.Auto or Always).");
    }

    private static long AppendData(Stream data, TensorProto tensor, StoredTensorInfo info, OnnxModel model, OnnxSaveOptions options)
    {
        if (info.ByteCount >= options.AlignThreshold && options.Alignment > 1)
        {
            long padding = (options.Alignment - data.Position % options.Alignment) % options.Alignment;
            for (long p = 0; p < padding; p++) data.WriteByte(0);
        }
        long offset = data.Position;
        if (info.IsExternal)
            OnnxTensorCodec.CopyExternal(tensor, info, model, data);
        else if (tensor.HasRawData)
            tensor.RawData.WriteTo(data);
        else
            data.Write(OnnxTensorCodec.ReadBytes(tensor, info, model));
        return offset;
    }

    private static TensorProto Inlined(TensorProto tensor, StoredTensorInfo info, OnnxModel model)
    {
        var replacement = WithoutData(tensor);
        replacement.RawData = UnsafeByteOperations.UnsafeWrap(OnnxTensorCodec.ReadBytes(tensor, info, model));
        return replacement;
    }

    /// <summary>A copy of the tensor's name, type, shape and metadata (and unknown fields), without its data.</summary>
    private static TensorProto WithoutData(TensorProto tensor)
    {
        // Clone keeps unknown fields; the raw_data ByteString it shares is immutable.
        var copy = tensor.Clone();
        copy.ClearRawData();
        copy.FloatData.Clear();
        copy.Int32Data.Clear();
        copy.StringData.Clear();
        copy.Int64Data.Clear();
        copy.DoubleData.Clear();
        copy.Uint64Data.Clear();
        copy.ExternalData.Clear();
        copy.ClearDataLocation();
        return copy;
    }

    private static void AddEntry(TensorProto tensor, string key, string value) =>
        tensor.ExternalData.Add(new StringStringEntryProto { Key = key, Value = value });

    private static void Swap(TensorSlot slot, TensorProto replacement, List<(TensorSlot, TensorProto)> swaps)
    {
        swaps.Add((slot, slot.Tensor));
        slot.Tensor = replacement;
    }

    private static bool SameFile(string a, string b) =>
        string.Equals(Path.GetFullPath(a), Path.GetFullPath(b), OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal);
}
